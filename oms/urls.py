from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from console import views as console_views
from console.admin_order import admin_apps_in_working_order

admin.site.site_header = _("OMS 订单管理系统")
admin.site.site_title = "OMS"
admin.site.index_title = _("后台管理")
# The home page opens with the workbench (console/): the queues that need someone, by role.
admin.site.index_template = "admin/console/index.html"
admin_apps_in_working_order(admin.site)
# The app sidebar costs a quarter of a 1366 px screen, and the order list needs it more; the
# home page (workbench and the app list) is one click away in the breadcrumbs.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/2fa/", include("accounts.urls")),
    path("admin/dashboard/", admin.site.admin_view(console_views.dashboard), name="console-dashboard"),
    path("admin/", admin.site.urls),
    # Django's set_language: the admin header's language switch posts here.
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include("orders.api.urls")),
    path("api/v1/", include("aftersales.api.urls")),
    path("api/v1/", include("fulfillment.api.urls")),
    path("payments/", include("payments.urls")),
    path("payments/sandbox/", include("payments.sandbox.urls")),
    path("fulfillment/", include("fulfillment.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="api-schema"),
        name="api-docs",
    ),
]
