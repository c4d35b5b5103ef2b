"""`booking_sync` with the approval form's key of issue 11 (upper case): a form Prefect refuses.

Served as a deployment by test_approval_deployment.py to show that a broken form leaves
the drop held, the run ending with the usual hint, and the next run offering the form.
"""

from prefect import flow

import flows.booking_sync as real

real.approval_key = lambda extract_id: f"approve-{extract_id}"  # what main d2a810e passed


@flow(name="booking_sync")
def broken_form_sync(as_of: str | None = None, wait_for_drop_s: float = 0.0) -> dict:
    """The real flow, run with the refused key."""
    return real.booking_sync.fn(as_of=as_of, wait_for_drop_s=wait_for_drop_s)
