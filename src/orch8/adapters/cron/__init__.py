"""Cron arithmetic on croniter (the only module that imports it)."""

from orch8.adapters.cron.calendar import CroniterCalendar

__all__ = ["CroniterCalendar"]
