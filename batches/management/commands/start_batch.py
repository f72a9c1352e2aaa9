from batches.management.utils import BatchControlCommand
from batches.services.audit import of_os_user
from batches.services.lifecycle import start_batch


class Command(BatchControlCommand):
    help = "Start a batch."
    past = "started"

    def transition(self, batch_id: int) -> None:
        start_batch(batch_id, actor=of_os_user())
