"""SQLAlchemy models: the Canvasflow record. No Flask import here."""

from .base import Base as Base
from .base import new_id as new_id
from .base import utcnow as utcnow
from .db import get_engine as get_engine
from .db import get_sessionmaker as get_sessionmaker
from .db import session_scope as session_scope
from .tables import ApiKey as ApiKey
from .tables import AuditLog as AuditLog
from .tables import CloudEvent as CloudEvent
from .tables import DeadLetter as DeadLetter
from .tables import Execution as Execution
from .tables import Heartbeat as Heartbeat
from .tables import LifecycleEvent as LifecycleEvent
from .tables import StepExecution as StepExecution
from .tables import Trigger as Trigger
from .tables import User as User
from .tables import Workflow as Workflow
from .tables import WorkflowVersion as WorkflowVersion
