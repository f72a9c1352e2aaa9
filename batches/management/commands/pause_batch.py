from batches.management.utils import BatchControlCommand
from batches.services.audit import of_os_user
from batches.services.lifecycle import pause_batch


class Command(BatchControlCommand):
    help = "Pause a batch."
    past = "paused"

    def transition(self, batch_id: int) -> None:
        pause_batch(batch_id, actor=of_os_user())
