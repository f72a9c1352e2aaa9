from django.urls import path

from batches import views

app_name = "batches"
urlpatterns = [
    path("", views.batch_list, name="batch_list"),
    path("batches/<int:pk>/", views.batch_detail, name="batch_detail"),
    path("batches/<int:pk>/export/<slug:fmt>/", views.batch_export, name="batch_export"),
    path("batches/<int:pk>/<slug:action>/", views.batch_action, name="batch_action"),
]
