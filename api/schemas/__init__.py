# ruff: noqa: F401
"""Request bodies and response models, one module per resource; ``common`` holds the
paging envelope ``Page[T]`` and the one function that builds it (``paged``)."""

from api.schemas.access import (
                                Account,
                                AccountCreated,
                                AccountIn,
                                AuditEntry,
                                Grant,
                                GrantIn,
                                Me,
                                PasswordIn,
                                Token,
)
from api.schemas.areas import (
                                AreaCollection,
                                AreaEdit,
                                AreaFeature,
                                AreaOutProperties,
                                AreaPatch,
                                AreaProperties,
                                BoundaryHistory,
                                BoundaryVersion,
                                FeatureCollectionIn,
                                FeatureIn,
                                FileImportReport,
                                ImportReport,
                                WebAddress,
)
from api.schemas.common import Health, Link, Open, Out, Page, links, paged
from api.schemas.coverage import (
                                CoverageCheck,
                                Exemption,
                                ExemptionCollection,
                                ExemptionIn,
                                RepairApplied,
                                RepairIn,
                                RepairProposal,
                                RepairProposed,
                                Run,
                                RunComparison,
                                RunListed,
)
from api.schemas.environment import (
                                Patrol,
                                PatrolIn,
                                PatrolsBehind,
                                Source,
                                SourceIn,
                                SourcePatch,
)
from api.schemas.incidents import (
                                Category,
                                CategoryPatch,
                                Escalated,
                                Incident,
                                IncidentCase,
                                IncidentDetail,
                                IncidentEvent,
                                IncidentImportReport,
                                IncidentIn,
                                MoveIn,
                                NoteIn,
                                Reporter,
                                TimeLimitsIn,
                                TransitionIn,
)
from api.schemas.locate import Located
from api.schemas.people import (
                                Assignment,
                                AssignmentIn,
                                AssignmentPatch,
                                Person,
                                PersonIn,
                                PersonPatch,
)
from api.schemas.public import (
                                Open311Error,
                                Open311Receipt,
                                Open311Request,
                                Open311Service,
                                PublicReceipt,
                                PublicReportIn,
)
from api.schemas.reference import (
                                Layer,
                                LayerIn,
                                LayerPatch,
                                Level,
                                LevelIn,
                                Role,
                                RoleIn,
)


