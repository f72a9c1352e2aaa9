"""The batch controls' one table (services.controls): the page's buttons and the admin's actions are its rows."""

from batches.admin.actions import BATCH_ACTIONS
from batches.roles import ROLES
from batches.services.controls import CONTROLS


def test_the_admin_offers_one_action_per_control_under_its_kept_name():
    names = list(BATCH_ACTIONS)

    assert names == ["start", "pause", "resume", "cancel", "repoint", "retry_failed"]
    assert sorted(name.replace("_", "-") for name in names) == sorted(CONTROLS)


def test_an_admin_action_is_described_by_the_buttons_label_unless_it_has_its_own():
    retry = CONTROLS["retry-failed"]

    assert str(CONTROLS["start"].description) == "Start"
    assert (str(retry.label), str(retry.description)) == ("Retry failed", "Retry failed executions")


def test_batch_operators_may_press_every_control():
    operators = set(ROLES["Batch operators"])

    assert {control.permission for control in CONTROLS.values()} <= operators
