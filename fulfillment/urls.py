"""Fulfillment's public URLs, mounted at /fulfillment/."""

from django.urls import path

from . import views

app_name = "fulfillment"

urlpatterns = [
    path("tracking/kuaidi100/", views.kuaidi100_push, name="kuaidi100-push"),
]
