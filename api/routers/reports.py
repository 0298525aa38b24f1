"""Downloads of the assessment: indicator tables (XLSX, CSV) and the monthly report
(月度通报, PDF or XLSX). Staff with scope on the area, as for the indicators themselves."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import AreaPeriodDep, Lang, SessionDep, SettingsDep
from geogrid.assessment import indicators as ind
from geogrid.assessment import reports

router = APIRouter(prefix="/api", tags=["assessment"])

TABLE_MEDIA = {reports.MEDIA_TYPES[f]: {} for f in reports.TABLE_FORMATS}
REPORT_MEDIA = {reports.MEDIA_TYPES[f]: {} for f in reports.REPORT_FORMATS}


def download(export: reports.Export) -> Response:
    # Private figures: never kept by a shared cache.
    return Response(export.content, media_type=export.media_type,
                    headers={"Content-Disposition": export.content_disposition(), "Cache-Control": "private, no-store"})


@router.get("/stats/export", response_class=Response,
            responses={200: {"content": TABLE_MEDIA, "description": "The workbook or CSV file (attachment)"}},
            summary="Indicators as an Excel workbook (one sheet per grouping) or CSV (one table)")
def export_indicators(
    session: SessionDep,
    settings: SettingsDep,
    q: AreaPeriodDep,
    by: Annotated[list[str] | None, Query(
        description="A table's groupings, comma-separated (" + ", ".join(ind.GROUPS) + "); repeat the parameter "
                    "for more tables (one sheet each); none: the total only")] = None,
    format: Annotated[Literal["xlsx", "csv"], Query(description="xlsx (default) or csv (one table)")] = "xlsx",
    header: Annotated[Literal["names", "keys"], Query(
        description="CSV header: the indicators' names in lang, or their keys (the JSON field names)")] = "names",
    lang: Lang = "zh",
) -> Response:
    tables = [t for t in map(ind.parse_groupings, by or []) if t]
    return download(reports.export_indicators(session, settings, area=q.area, start=q.start, end=q.end, tables=tables,
                                              format=format, lang=lang, header=header))


@router.get("/reports/monthly", response_class=Response,
            responses={200: {"content": REPORT_MEDIA, "description": "The report (attachment)"}},
            summary="The monthly report (月度通报) of an area as PDF or XLSX")
def monthly_report(
    session: SessionDep,
    settings: SettingsDep,
    area: Annotated[str, Query(description="Area code: a county's report is by town, a town's by village, "
                                           "below by grid")],
    month: Annotated[str, Query(description="The month, e.g. 2026-11")],
    format: Annotated[Literal["pdf", "xlsx"], Query(description="pdf (default) or xlsx")] = "pdf",
    lang: Lang = "zh",
) -> Response:
    return download(reports.export_monthly(session, settings, area=area, month=month, format=format, lang=lang))
