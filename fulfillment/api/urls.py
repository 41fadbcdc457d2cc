from django.urls import path

from . import views

urlpatterns = [
    path("warehouse/shipments/", views.WarehouseShipmentListView.as_view(), name="warehouse-shipments"),
    path(
        "warehouse/shipments/<str:shipment_no>/ship/",
        views.WarehouseShipmentShipView.as_view(),
        name="warehouse-shipment-ship",
    ),
    path("orders/<str:order_no>/shipments/", views.OrderShipmentsView.as_view(), name="order-shipments"),
]
