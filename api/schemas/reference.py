"""Reference lists a county configures: levels, layers (thematic nets) and roles."""

from __future__ import annotations

from pydantic import Field

from api.schemas.common import In, Out


class LevelIn(In):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    rank: int = Field(ge=1, le=99)
    code_length: int = Field(ge=2, le=32)
    name_zh: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)


class LayerIn(In):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    name_zh: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=2000)


class LayerPatch(In):
    name_zh: str | None = Field(default=None, min_length=1, max_length=64)
    name_en: str | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=2000)


class RoleIn(In):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    name_zh: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)
    rank: int = Field(default=100, ge=0, le=10_000)
    responsible: bool = True


class Level(Out):
    key: str
    rank: int
    code_length: int
    name_zh: str
    name_en: str


class Layer(Out):
    key: str
    name_zh: str
    name_en: str
    description: str | None


class Role(Out):
    key: str
    rank: int
    name_zh: str
    name_en: str
    responsible: bool
