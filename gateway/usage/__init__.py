"""Usage, cost and budgets: what every answer used, reports over it, and monthly limits."""

from gateway.usage.budgets import Budget as Budget, BudgetBook as BudgetBook, BudgetIn as BudgetIn
from gateway.usage.guard import BudgetGuard as BudgetGuard
from gateway.usage.meter import AnswerMeter as AnswerMeter
from gateway.usage.notices import (
    BUDGET_CALLBACK_JOB as BUDGET_CALLBACK_JOB,
    BudgetCallbackDelivery as BudgetCallbackDelivery,
)
from gateway.usage.recorder import UsageRecorder as UsageRecorder
from gateway.usage.records import UsageRecord as UsageRecord
from gateway.usage.report import UsageReport as UsageReport
from gateway.usage.service import UsageService as UsageService
