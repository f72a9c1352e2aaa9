"""The Django admin of the app: its model admins (found here by admin.autodiscover), batch actions, bounded lists
and the operators' read-only lists."""

from batches.admin import model_admins as model_admins
