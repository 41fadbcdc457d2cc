from django.urls import path

from . import views

urlpatterns = [
    path("orders/<str:order_no>/aftersales/", views.OrderAftersaleCreateView.as_view(), name="order-aftersales"),
    path("aftersales/<str:aftersale_no>/", views.AftersaleDetailView.as_view(), name="aftersale-detail"),
    path(
        "aftersales/<str:aftersale_no>/return-shipment/",
        views.AftersaleReturnShipmentView.as_view(),
        name="aftersale-return-shipment",
    ),
    path("aftersales/<str:aftersale_no>/cancel/", views.AftersaleCancelView.as_view(), name="aftersale-cancel"),
]
