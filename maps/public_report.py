"""Report a problem from the public map (我要反映) and look up a report by its receipt
(查询办理进度): ``geogrid.reportForm``, maps/static/report.js.

The page talks to the service's public intake as any client would: POST
/api/public/reports (rate-limited, an idempotency key per form, the reporter's contact
private) and GET /api/public/reports/{receipt} (public fields only). The page itself
carries only public data: the categories marked public (key and name), the boundary of
the area shown (to refuse a point outside the jurisdiction before any request) and its
texts. A standalone file has no service: its button says so and sends nothing.
"""

from __future__ import annotations

import branca
import folium
from sqlalchemy.orm import Session

from geogrid.core.settings import Settings
from geogrid.incidents import categories, intake
from maps.base import Script

MAX_URL = 500  # the intake refuses longer media addresses (geogrid/incidents/intake.py)
MAX_NAME = 100  # api/schemas/incidents.py Reporter.name

TEXTS = {
    "zh": {
        "button": "我要反映", "lookup_button": "查询办理进度", "title": "我要反映", "close": "关闭",
        "step1": "第一步：标出问题位置", "pin_hint": "在地图上点击问题所在位置，可拖动标记调整。",
        "locate": "使用我的位置", "no_point": "尚未标出位置", "in_grid": "所在网格：",
        "outside": "该位置不在本辖区内", "no_grid": "位于本辖区内（未划入网格，由属地受理）",
        "coords": "经纬度：", "step2": "第二步：填写问题", "category": "问题类别", "choose": "请选择",
        "description": "问题描述", "description_hint": "请写明问题的具体情况，如时间、地点、现象",
        "count": "{n}/{max} 字", "photo": "照片链接（可选）", "photo_hint": "以 http:// 或 https:// 开头",
        "contact": "联系方式（可选）", "name": "姓名", "phone": "联系电话",
        "private": "仅工作人员可见，不会公开", "required": "（必填）", "submit": "提交",
        "sending": "正在提交……", "need_point": "请先在地图上标出问题位置", "need_category": "请选择问题类别",
        "need_description": "请填写问题描述", "too_long": "问题描述不能超过 {max} 字",
        "bad_photo": "照片链接须以 http:// 或 https:// 开头，且不超过 500 个字符",
        "bad_phone": "联系电话只能包含数字、空格和 + - ( )，长度 3 至 32 位",
        "bad_name": "姓名不能超过 100 个字", "invalid": "提交的内容有误，请检查后重试",
        "rate": "提交过于频繁，请 {s} 秒后再试", "duplicate": "该反映已经提交过，请勿重复提交。如未记下回执号，请拨打监督电话查询。",
        "offline": "网络连接失败，请检查网络后重试", "server": "服务暂时不可用，请稍后再试",
        "done": "提交成功", "receipt": "回执号", "copy": "复制", "copied": "已复制",
        "copy_failed": "无法自动复制，请手动记下回执号", "keep": "请记下回执号，凭回执号查询办理进度。",
        "state": "办理状态", "category_name": "问题类别", "reported_at": "反映时间", "closed_at": "办结时间",
        "again": "再反映一个问题", "lookup_title": "查询办理进度", "receipt_input": "回执号",
        "receipt_placeholder": "如 GG20250101-0123456789", "lookup": "查询", "looking": "正在查询……",
        "not_found": "未找到该回执号", "need_receipt": "请输入回执号",
        "denied": "位置权限被拒绝", "no_position": "无法获取位置",
        "standalone": "这是离线保存的地图文件，无法在线反映问题或查询办理进度。请在联网状态下打开网上公示地图页面办理。",
    },
    "en": {
        "button": "Report a problem", "lookup_button": "Track a report", "title": "Report a problem", "close": "Close",
        "step1": "Step 1: mark the place", "pin_hint": "Tap the map where the problem is; drag the pin to adjust.",
        "locate": "Use my location", "no_point": "No place marked yet", "in_grid": "Grid: ",
        "outside": "This place is outside the jurisdiction",
        "no_grid": "Inside the jurisdiction (in no grid: the local office takes it)", "coords": "Lon/lat: ",
        "step2": "Step 2: describe the problem", "category": "Category", "choose": "Choose…",
        "description": "Description", "description_hint": "What, where and since when",
        "count": "{n}/{max} characters", "photo": "Photo link (optional)", "photo_hint": "Starting with http:// or https://",
        "contact": "Contact (optional)", "name": "Name", "phone": "Phone",
        "private": "Seen by staff only, never published", "required": " (required)", "submit": "Submit",
        "sending": "Submitting…", "need_point": "Mark the place of the problem on the map first",
        "need_category": "Choose a category", "need_description": "Describe the problem",
        "too_long": "The description may have at most {max} characters",
        "bad_photo": "A photo link must start with http:// or https:// (at most 500 characters)",
        "bad_phone": "A phone number has 3 to 32 digits, spaces or + - ( )",
        "bad_name": "A name has at most 100 characters", "invalid": "Something in the report is invalid: check it and retry",
        "rate": "Too many reports: try again in {s} s",
        "duplicate": "This report was already submitted. Without its receipt, call the supervision hotline.",
        "offline": "The service cannot be reached: check the network and retry",
        "server": "The service is unavailable: try again later", "done": "Submitted", "receipt": "Receipt",
        "copy": "Copy", "copied": "Copied", "copy_failed": "Could not copy: note the receipt down",
        "keep": "Keep the receipt: it is how you track the report.", "state": "State", "category_name": "Category",
        "reported_at": "Reported", "closed_at": "Closed", "again": "Report another problem",
        "lookup_title": "Track a report", "receipt_input": "Receipt", "receipt_placeholder": "e.g. GG20250101-0123456789",
        "lookup": "Look up", "looking": "Looking up…", "not_found": "No report has this receipt",
        "need_receipt": "Enter a receipt", "denied": "Location permission denied", "no_position": "Position unavailable",
        "standalone": "This is a saved map file: reports and tracking need the online public map page.",
    },
}


def public_categories(session: Session, lang: str) -> list[dict]:
    """The categories the public may report (marked public), key and name in ``lang``, in group order."""
    return [{"key": key, "name": c["name_en" if lang == "en" else "name_zh"]}
            for key, c in categories.categories(session).items() if c["public"]]


class ReportForm(Script):
    """The "report a problem" button (bottom left) with its form, and the receipt lookup."""

    files = ("report.js",)
    _template = branca.element.Template("""
        {% macro script(this, kwargs) %}
        geogrid.reportForm({{ this.map_name }}, {{ this.layer_name }}, {{ this.config|tojson }});
        {% endmacro %}""")

    def __init__(self, m: folium.Map, grids, session: Session, settings: Settings, *, boundary: dict,
                 lang: str = "zh", served: bool = True):
        super().__init__()
        self.m, self.grids = m, grids
        lang = "en" if lang == "en" else "zh"
        self.config = {
            "served": served, "lang": lang, "t": TEXTS[lang], "categories": public_categories(session, lang),
            "maxDescription": intake.MAX_DESCRIPTION, "maxUrl": MAX_URL, "maxName": MAX_NAME,
            "timezone": settings.timezone,
            # The jurisdiction: a point outside it is refused on the page, before any request.
            "boundary": boundary,
        }

    def render(self, **kwargs):
        self.map_name, self.layer_name = self.m.get_name(), self.grids.get_name()
        super().render(**kwargs)
