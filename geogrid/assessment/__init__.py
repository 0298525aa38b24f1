"""Assessment (考核): the indicators over the case register and patrols, named periods,
score sheets with their periods, rankings and red/black lists, and the exports (Excel,
CSV, the monthly report as PDF).
"""
