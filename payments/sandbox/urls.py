"""The sandbox gateway, mounted at /payments/sandbox/: Alipay gateway.do, WeChat Pay v3, the cashier."""

from django.urls import path

from . import views

app_name = "payments_sandbox"

urlpatterns = [
    path("alipay/gateway.do", views.alipay_gateway, name="alipay-gateway"),
    path("wechatpay/v3/pay/transactions/native", views.wechatpay_native, name="wechatpay-native"),
    path(
        "wechatpay/v3/pay/transactions/out-trade-no/<str:out_trade_no>",
        views.wechatpay_trade,
        name="wechatpay-trade",
    ),
    path(
        "wechatpay/v3/pay/transactions/out-trade-no/<str:out_trade_no>/close",
        views.wechatpay_close,
        name="wechatpay-close",
    ),
    path("wechatpay/v3/refund/domestic/refunds", views.wechatpay_refunds, name="wechatpay-refunds"),
    path("pay/<str:out_trade_no>/", views.cashier, name="cashier"),
]
