from batches.management.utils import BatchControlCommand
from batches.services.audit import of_os_user
from batches.services.lifecycle import resume_batch


class Command(BatchControlCommand):
    help = "Resume a batch."
    past = "resumed"

    def transition(self, batch_id: int) -> None:
        resume_batch(batch_id, actor=of_os_user())
