"""Control reports for unit managers: report objects, builders and the HTML/XLSX/CSV writer."""

from mvg_sync.reports.eservice import build_eservice_report
from mvg_sync.reports.hsl import build_hsl_report
from mvg_sync.reports.model import Chart, Report, View, pseudonymise
from mvg_sync.reports.sync_health import build_sync_health_report
from mvg_sync.reports.tickets import build_tickets_report
from mvg_sync.reports.write import write_report

__all__ = [
    "Chart",
    "Report",
    "View",
    "build_eservice_report",
    "build_hsl_report",
    "build_sync_health_report",
    "build_tickets_report",
    "pseudonymise",
    "write_report",
]
