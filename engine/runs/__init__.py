"""Execution state transitions: the one engine package given a Session.

Every transition is a compare-and-set on the step row inside one short transaction (or
one autocommitted statement), so a message delivered twice, a repair publish racing the
original, or a stale worker can never run a step twice nor move a row backwards.
Functions return what to publish; the caller publishes *after* commit (the ticker
republishes anything a crash loses in between).

    cache.py        compiled workflow versions and execution headers, per process
    state.py        the Claim, table aliases, compare-and-set helpers, finishing
    steps.py        claim / skip / complete / retry / fail / park / wake a step
    pure.py         prepare a pure step from reads alone (or from a handed-over output)
    executions.py   create, cancel, resume, promote pending; steps and timeline reads
    dead_letters.py replay a dead-lettered step
"""

from .cache import Compiled as Compiled
from .cache import cached_compiled as cached_compiled
from .cache import compile_version as compile_version
from .cache import load_compiled as load_compiled
from .cache import node_type_of as node_type_of
from .cache import prev_usable as prev_usable
from .dead_letters import Replay as Replay
from .dead_letters import replay_dead_letter as replay_dead_letter
from .executions import Started as Started
from .executions import cancel_execution as cancel_execution
from .executions import create_execution as create_execution
from .executions import promote_pending as promote_pending
from .executions import resume_execution as resume_execution
from .executions import steps_of as steps_of
from .executions import timeline as timeline
from .pure import prepare_pure_step as prepare_pure_step
from .state import PURE_TYPES as PURE_TYPES
from .state import Claim as Claim
from .state import E as E
from .state import Followups as Followups
from .state import S as S
from .state import execution_running as execution_running
from .state import finish_execution as finish_execution
from .steps import claim_step as claim_step
from .steps import complete_step as complete_step
from .steps import completion_is_one_statement as completion_is_one_statement
from .steps import fail_step as fail_step
from .steps import park_step as park_step
from .steps import requeue_stamp as requeue_stamp
from .steps import schedule_retry as schedule_retry
from .steps import skip_step as skip_step
from .steps import wake_step as wake_step
