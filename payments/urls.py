from django.urls import path

from . import views

urlpatterns = [
    path("notify/alipay/", views.alipay_notify, name="notify-alipay"),
    path("notify/wechatpay/", views.wechatpay_notify, name="notify-wechatpay"),
    path("pay/<str:order_no>/", views.pay_page, name="pay-page"),
]
