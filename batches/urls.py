from django.urls import path

from batches.views import api, batches, compare, executions, failures, new_batch, rerun, results, upstream, workflows

app_name = "batches"
urlpatterns = [
    path("", batches.batch_list, name="batch_list"),
    path("batches/new/", new_batch.batch_new, name="batch_new"),
    path("batches/new/upload/", new_batch.batch_upload, name="batch_upload"),
    path("batches/new/preview/", new_batch.batch_preview, name="batch_preview"),
    path("batches/new/preview/mapping/", new_batch.batch_map, name="batch_map"),
    path("batches/new/import/", new_batch.batch_import, name="batch_import"),
    path("batches/<int:pk>/", batches.batch_detail, name="batch_detail"),
    path("batches/<int:pk>/progress.json", api.batch_progress_json, name="batch_progress_json"),
    path("batches/<int:pk>/failures/", failures.batch_failures, name="batch_failures"),
    path("batches/<int:pk>/failures.json", api.batch_failures_json, name="batch_failures_json"),
    path("batches/<int:pk>/retry/", failures.batch_retry, name="batch_retry"),
    path("batches/<int:pk>/retry.json", api.batch_retry_json, name="batch_retry_json"),
    path("batches/<int:pk>/concurrency/", batches.batch_concurrency, name="batch_concurrency"),
    path("batches/<int:pk>/export/<slug:fmt>/", batches.batch_export, name="batch_export"),
    path("batches/<int:pk>/probe/", upstream.batch_probe, name="batch_probe"),
    path("batches/<int:pk>/results/", results.batch_results, name="batch_results"),
    path("batches/<int:pk>/results.json", api.batch_results_json, name="batch_results_json"),
    path("batches/<int:pk>/rerun/", rerun.batch_rerun, name="batch_rerun"),
    path("batches/compare/", compare.batch_compare_chosen, name="batch_compare_chosen"),
    path("batches/<int:a>/compare/<int:b>/", compare.batch_compare, name="batch_compare"),
    path(
        "batches/<int:a>/compare/<int:b>/export/<slug:fmt>/",
        compare.batch_compare_export,
        name="batch_compare_export",
    ),
    # start, pause, resume, cancel, retry-failed, repoint (services.controls.CONTROLS); keep after the fixed names above
    path("batches/<int:pk>/<slug:action>/", batches.batch_action, name="batch_action"),
    path("executions/<int:pk>/", executions.execution_detail, name="execution_detail"),
    path("executions/<int:pk>/retry/", executions.execution_retry, name="execution_retry"),
    path("workflows/<int:pk>/template.csv", new_batch.workflow_template, name="workflow_template"),
    path("workflows/", workflows.workflow_list, name="workflow_list"),
    path("workflows/add/", workflows.workflow_add, name="workflow_add"),
    path("workflows/<int:pk>/", workflows.workflow_edit, name="workflow_edit"),
    path("workflows/<int:pk>/test/", workflows.workflow_test, name="workflow_test"),
    path("workflows/<int:pk>/notify-test/", workflows.workflow_notify_test, name="workflow_notify_test"),
    path("workflows/<int:pk>/webhook-secret/", workflows.workflow_webhook_secret, name="workflow_webhook_secret"),
]
