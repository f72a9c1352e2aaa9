from django.urls import path

from batches import views, views_compare, views_rerun, views_results, views_upstream, views_workflows

app_name = "batches"
urlpatterns = [
    path("", views.batch_list, name="batch_list"),
    path("batches/new/", views.batch_new, name="batch_new"),
    path("batches/new/upload/", views.batch_upload, name="batch_upload"),
    path("batches/new/preview/", views.batch_preview, name="batch_preview"),
    path("batches/new/import/", views.batch_import, name="batch_import"),
    path("batches/<int:pk>/", views.batch_detail, name="batch_detail"),
    path("batches/<int:pk>/progress.json", views.batch_progress_json, name="batch_progress_json"),
    path("batches/<int:pk>/failures/", views.batch_failures, name="batch_failures"),
    path("batches/<int:pk>/failures.json", views.batch_failures_json, name="batch_failures_json"),
    path("batches/<int:pk>/retry/", views.batch_retry, name="batch_retry"),
    path("batches/<int:pk>/retry.json", views.batch_retry_json, name="batch_retry_json"),
    path("batches/<int:pk>/concurrency/", views.batch_concurrency, name="batch_concurrency"),
    path("batches/<int:pk>/export/<slug:fmt>/", views.batch_export, name="batch_export"),
    path("batches/<int:pk>/probe/", views_upstream.batch_probe, name="batch_probe"),
    path("batches/<int:pk>/results/", views_results.batch_results, name="batch_results"),
    path("batches/<int:pk>/results.json", views_results.batch_results_json, name="batch_results_json"),
    path("batches/<int:pk>/rerun/", views_rerun.batch_rerun, name="batch_rerun"),
    path("batches/<int:a>/compare/<int:b>/", views_compare.batch_compare, name="batch_compare"),
    path(
        "batches/<int:a>/compare/<int:b>/export/<slug:fmt>/",
        views_compare.batch_compare_export,
        name="batch_compare_export",
    ),
    # start, pause, resume, cancel, retry-failed (views.CONTROLS); keep after the fixed names above
    path("batches/<int:pk>/<slug:action>/", views.batch_action, name="batch_action"),
    path("executions/<int:pk>/", views.execution_detail, name="execution_detail"),
    path("executions/<int:pk>/retry/", views.execution_retry, name="execution_retry"),
    path("workflows/<int:pk>/template.csv", views.workflow_template, name="workflow_template"),
    path("workflows/", views_workflows.workflow_list, name="workflow_list"),
    path("workflows/add/", views_workflows.workflow_add, name="workflow_add"),
    path("workflows/<int:pk>/", views_workflows.workflow_edit, name="workflow_edit"),
    path("workflows/<int:pk>/test/", views_workflows.workflow_test, name="workflow_test"),
]
