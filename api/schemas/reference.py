"""Reference lists a county configures: levels, layers (thematic nets) and roles."""

from __future__ import annotations

from pydantic import Field

from api.schemas.common import In, Out


class LevelIn(In):
    """A new level: at ``rank``, or inserted ``above`` or ``below`` a level (exactly one)."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    rank: int | None = Field(default=None, ge=1, le=99, description="Position, 1 = top (appending)")
    above: str | None = Field(default=None, description="Insert above this level (a national root: above province)")
    below: str | None = Field(default=None, description="Insert below this level (a 工作区: below town)")
    code_length: int = Field(ge=2, le=32)
    name_zh: str = Field(min_length=1, max_length=64)
    name_en: str = Field(min_length=1, max_length=64)
    prefixes_children: bool = Field(default=True, description="Children's codes start with this level's codes "
                                    "(false for a national root or a 工作区: theirs follow the nearest ancestor's)")


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
    prefixes_children: bool


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
