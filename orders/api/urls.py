from django.urls import path

from reminders.api import OrderMessagesView

from . import views

urlpatterns = [
    path("orders/", views.OrderCreateView.as_view(), name="order-create"),
    path("orders/<str:order_no>/", views.OrderDetailView.as_view(), name="order-detail"),
    path(
        "orders/<str:order_no>/cancel/",
        views.OrderCancelView.as_view(),
        name="order-cancel",
    ),
    path(
        "orders/<str:order_no>/confirm-receipt/",
        views.OrderConfirmReceiptView.as_view(),
        name="order-confirm-receipt",
    ),
    path("orders/<str:order_no>/payments/", views.OrderPaymentView.as_view(), name="order-payments"),
    path(
        "orders/<str:order_no>/address/",
        views.OrderAddressView.as_view(),
        name="order-address",
    ),
    path("orders/<str:order_no>/messages/", OrderMessagesView.as_view(), name="order-messages"),
]
