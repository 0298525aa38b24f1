"""Who may do what, where: principals, role grants and scopes, accounts, tokens and
logins, the audit log, and login/rate throttling.
"""
