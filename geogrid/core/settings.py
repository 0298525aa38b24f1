"""All configuration in one place, read from ``GEOGRID_*`` environment variables or ``.env``.

>>> from geogrid.core.settings import Settings
>>> Settings(db_port=6000).db_port
6000
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # geogrid/core/settings.py -> the checkout


def _default_state_dir() -> Path:
    # In a checkout the state lives beside the code (and is git-ignored); an installed
    # package has no checkout, so it falls back to the user's state directory.
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / ".geogrid"
    return Path.home() / ".local" / "state" / "geogrid"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GEOGRID_", env_file=".env", extra="ignore")

    # --- database -------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of an existing PostGIS database. When unset, geogrid "
        "runs its own local cluster in state_dir.",
    )
    state_dir: Path = Field(default_factory=_default_state_dir)
    db_name: str = "geogrid"
    db_port: int = Field(default=54329, description="Preferred port of the local cluster.")
    replica_urls: list[str] = Field(
        default_factory=list,
        description="SQLAlchemy URLs of hot standbys of database_url (streaming replication). Reads that tolerate "
        "a few seconds of lag (locate, public map, OGC, tiles, public lists) go to them; writes and a writer's own "
        "reads go to the primary. Empty with a local cluster: its standbys (geogrid db up --replicas N).",
    )
    read_your_writes_s: float = Field(
        default=5.0, ge=0, description="After a write, the same client reads from the primary this long (seconds), "
        "so it never reads a standby that has not replayed its own write yet.")
    replica_max_lag_s: float = Field(
        default=30.0, ge=0, description="A standby further behind than this (seconds of replay) takes no reads "
        "until it catches up.")
    replica_wal_keep_mb: int = Field(
        default=4096, ge=-1, description="Local cluster: WAL (MB) the primary keeps for a standby that is stopped or "
        "behind (max_slot_wal_keep_size; -1: no limit). Beyond it the standby's slot is lost, `geogrid db status` says "
        "so, and the standby is made again; without a limit a standby left stopped fills the primary's disk.")
    db_pool_size: int = Field(default=30, ge=1, description="Database connections each service process keeps open "
                              "(at least its concurrent requests: connections above it are closed when returned)")
    db_async_pool_size: int = Field(default=10, ge=1, description="Database connections each service process "
                                    "keeps for incident intake, which runs on the event loop (psycopg's async "
                                    "connection): a request holds one for a few milliseconds, so few serve many; a request "
                                    "finding them all busy waits for one (no overflow)")
    db_pool_overflow: int = Field(default=10, ge=0, description="Extra connections a process may open for a burst")
    db_system_user: str = Field(
        default="geogrid",
        description="Unprivileged system user that runs the local cluster when geogrid runs as root.",
    )

    # --- HTTP service ------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = Field(default=64 * 1024 * 1024, description="Largest accepted request body (413 above).")
    token_hours: float = Field(default=8.0, description="Lifetime of a login token.")
    login_per_minute: int = Field(default=10, description="Login attempts a minute per client address (429 above).")
    login_failures_per_account: int = Field(
        default=5, description="Failed logins of one account before it must wait (backoff doubles with each further "
        "failure); counted across every worker and host in PostgreSQL.")
    login_failures_per_address: int = Field(
        default=50, description="Failed logins from one client address before it must wait: higher than per account, "
        "so one attacker behind an office's NAT does not lock the whole office out.")
    login_backoff_s: float = Field(default=30.0, description="First wait after too many failed logins, seconds.")
    login_backoff_max_s: float = Field(default=900.0, description="Longest wait after failed logins, seconds.")
    login_window_s: float = Field(default=900.0, description="Failed logins older than this are forgotten, seconds.")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Addresses of reverse proxies whose X-Forwarded-For/-Proto headers are "
        "believed (for client addresses in limits and for Secure cookies behind HTTPS); empty: none.")
    default_page_size: int = 100
    max_page_size: int = 1000

    # --- geometry rules ---------------------------------------------------------
    extent: tuple[float, float, float, float] = Field(
        default=(73.0, 3.0, 136.0, 54.0),
        description="lon/lat box the service accepts (default: China with a margin); "
        "catches swapped or projected coordinates.",
    )
    max_spill_ratio: float = Field(
        default=0.01,
        description="Share of a child's area allowed outside its parent before it is rejected. "
        "Smaller spill-over is accepted and left to the coverage check.",
    )
    timezone: str = "Asia/Shanghai"
    max_vertices_per_feature: int = Field(
        default=200_000, description="Most vertices one feature may have (a province outline has ~100,000).")
    max_vertices_per_request: int = Field(
        default=5_000_000, description="Most vertices one import or edit may carry in all.")

    # --- coverage checks (defaults from published plans; every county sets its own) -----
    sliver_width_m: float = Field(default=2.0, description="Gaps narrower than this are slivers, wider ones blind spots.")
    households_range: tuple[int, int] = (300, 500)
    population_range: tuple[int, int] = (1000, 1500)
    expiring_within_days: int = 30
    max_grids_per_person: int = 5

    # --- cases: working calendar and patrols ------------------------------------------
    holidays: list[dt.date] = Field(default_factory=list, description='Days off, e.g. ["2026-10-01", "2026-10-02"]')
    extra_workdays: list[dt.date] = Field(default_factory=list, description="Weekend days worked (调休)")
    work_day_start: dt.time = dt.time(8, 30)
    work_day_end: dt.time = dt.time(17, 30)
    escalation_interval_s: int = Field(default=300, description="How often the service escalates overdue cases; 0: never")
    facts_interval_s: float = Field(default=5.0, ge=0, description="How often the service folds the cases taken in "
                                    "and moved since into the assessment facts and monthly sums (indicators also do "
                                    "it before reading); 0: only then")
    patrol_days_by_level: dict[str, int] = Field(
        default_factory=lambda: {"county": 30, "town": 30, "village": 7, "grid": 7, "microgrid": 7},
        description="Environment grids: the longest time between two patrols, by level")
    key_source_days: int = Field(default=30, description="Key-supervision pollution sources: longest time between visits")
    satisfied_from: int = Field(default=6, ge=0, le=10, description="A satisfaction rating (0-10) at or above this "
                                "counts as satisfied in 满意率")
    public_reports_per_minute: int = Field(default=5, description="Anonymous reports a minute per client address")

    # --- households, contact and visits ----------------------------------------
    id_hash_key: str | None = Field(default=None, description="Secret key of the ID-number hash (HMAC-SHA256). "
                                    "Unset: a random key kept in state_dir/id-hash.key. Every host must share it.")
    households_per_cadre_max: int = Field(default=30, ge=1, description="Contact (联户): most households one cadre "
                                          "is linked to before the check flags them")
    radiating_per_central: tuple[int, int] = Field(default=(3, 8), description="Contact (1+1+n): the number of "
                                                   "radiating households a central household should have")
    visits_per_year_min: int = Field(default=6, ge=0, description="Visits every linked household gets a year, at least")

    open311_jurisdiction_id: str | None = Field(default=None, description="Open311 jurisdiction_id this service "
                                                "answers to (another one gets 404); None: any")
    open311_contact: str = Field(default="", description="Open311 discovery: who to contact about the API")
    open311_key_service: str = Field(default="", description="Open311 discovery: where clients ask for an API key")

    # --- boundary editing --------------------------------------------------------------
    edit_confirm_area_share: float = Field(default=0.10, ge=0, description="An edit that changes a grid's area by more "
                                           "than this share (or opens a gap or an overlap) asks to be confirmed")
    shared_vertex_tolerance_m: float = Field(default=0.05, gt=0, le=10, description="A neighbour's vertex this close "
                                             "to a moved one is the same vertex and moves with it (topological edit)")
    snap_tolerance_px: int = Field(default=12, ge=0, le=100, description="Drawing on the planner map snaps to "
                                   "neighbours' vertices and edges this close, screen pixels; 0 turns snapping off")

    # --- maps --------------------------------------------------------------------------
    map_tiles: str = Field(default="OpenStreetMap", description="Folium tiles name or URL template; 'none' for no "
                           "base map. Use WGS84 tiles: GCJ-02 tiles (Amap, Tencent) put grids hundreds of metres off.")
    map_attribution: str = "© OpenStreetMap contributors"
    supervision_hotline: str = Field(default="12345", description="监督电话 shown on the public grid board")
    public_url: str | None = Field(default=None, description="The service's public address (e.g. "
                                   "https://grid.example.gov.cn), printed as the QR code of the grid boards; unset: "
                                   "http://{host}:{port}")
    board_photo_hosts: list[str] = Field(default_factory=list, description="Hosts (or host:port) whose published "
                                         "photos the printed grid boards embed (fetched by the service); [] prints "
                                         "a placeholder for every photo")
    board_pdfs_per_minute: int = Field(default=30, ge=1, description="Printable grid boards (PDF) a minute per "
                                       "client address: a village booklet takes seconds to lay out")
    map_simplify_m: float = Field(default=5.0, description="Display simplification of boundaries, metres (edits "
                                  "and lookups always use the stored boundaries)")
    tiles_above: int = Field(default=2000, ge=0, description="The served public map draws a layer from vector tiles "
                             "(/tiles) instead of carrying its boundaries when the area has more published grids "
                             "of it than this (a standalone file always carries them)")
    tile_max_age_s: int = Field(default=300, ge=0, description="Cache-Control max-age of vector tiles and their "
                                "TileJSON, seconds: short, since a publication changes tiles (clients revalidate "
                                "with the ETag)")
    cors_origins: list[str] = Field(default_factory=lambda: ["*"], description="Origins allowed to call the API from "
                                    "a browser (exported planner maps open from disk); [] turns CORS off")
    language: str = Field(default="zh", description="Default language of user-facing labels: zh or en.")


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment (``GEOGRID_*``) and ``.env``, read once per process."""
    return Settings()
