"""Settings shared by every environment; everything that differs comes from the environment.

`DATABASE_URL` and `REDIS_URL` switch the same code from the zero-setup defaults
(SQLite in ./var, kombu's filesystem broker) to PostgreSQL and Redis.
"""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_fsm",
    "django_celery_beat",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "accounts",
    "inventory",
    "orders",
    "payments",
    "payments.sandbox",
    "fulfillment",
    "aftersales",
    "reminders",
    "import_export",
    "console",
    "oms",  # after the apps: its migration gives their permissions to the staff roles
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the cookie the admin header's switch sets (Django's set_language), else the
    # browser's Accept-Language among LANGUAGES, else LANGUAGE_CODE, so Chinese stays the default.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.TwoFactorRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "oms.urls"
WSGI_APPLICATION = "oms.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'oms.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; IMMEDIATE takes the
    # write lock at BEGIN, so two writers queue on busy_timeout instead of one of
    # them failing half-way with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's, with a health check that reads the socket instead of sending SELECT 1.
        DATABASES["default"]["ENGINE"] = "oms.postgresql"
        # Statements sent again and again are prepared on their connection (oms/postgresql/
        # statements.py); off behind a transaction-mode connection pooler.
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_statements"] = env.bool(
            "DB_PREPARE_STATEMENTS", default=True
        )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis / Celery ---------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
BROKER_DIR = VAR_DIR / "broker"

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    # A broker that needs no server: kombu's filesystem transport, in ./var/broker.
    for sub in ("out", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

CELERY_TIMEZONE = "Asia/Shanghai"
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Auth and staff logins (accounts/) ------------------------------------------
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username+IP before the password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("OMS_PASSWORD_MIN_LENGTH", default=10)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sessions end after this long without a request (every request pushes the expiry on).
SESSION_COOKIE_AGE = env.int("OMS_SESSION_IDLE_MINUTES", default=30) * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True

# django-axes: N failed logins for one username from one IP lock that pair out for a while.
# Unlock early with `manage.py axes_reset_username NAME` (or axes_reset_ip, axes_reset).
AXES_ENABLED = env.bool("OMS_LOGIN_LOCKOUT_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("OMS_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("OMS_LOGIN_LOCKOUT_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429

# django-otp: TOTP (authenticator app) as the second factor.
OMS_2FA_REQUIRED_GROUPS = env.list("OMS_2FA_REQUIRED_GROUPS", default=["财务", "主管"])
OMS_2FA_REQUIRE_SUPERUSERS = env.bool("OMS_2FA_REQUIRE_SUPERUSERS", default=True)
OTP_TOTP_ISSUER = env.str("OMS_2FA_ISSUER", default="OMS")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin never shows another user's TOTP key or QR code

# --- I18N / time ------------------------------------------------------------
# The source strings are Chinese; English comes from locale/en (see docs/i18n.md).
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

# --- Static -----------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- DRF --------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["orders.api.auth.StorefrontAPIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["orders.api.auth.HasStorefrontAPIKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["orders.api.auth.StorefrontRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"storefront": env.str("API_THROTTLE_RATE", default="600/min")},
    "EXCEPTION_HANDLER": "oms.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "OMS storefront API",
    "DESCRIPTION": "订单管理系统 — storefront order API. Authenticate with `Authorization: Api-Key <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The order status keeps the name it had before parcels had a status too.
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "orders.models.OrderStatus",
        "ShipmentStatusEnum": "fulfillment.models.ShipmentStatus",
        "AftersaleReasonEnum": "aftersales.models.AftersaleReason",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "orders.api.schema.add_error_responses",
    ],
}

# --- Logging ----------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"refusals_without_traceback": {"()": "oms.logfilters.RefusalsWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["refusals_without_traceback"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Failed logins and lockouts are warnings; axes' start-up banner and each success (also kept
    # in its AccessLog table) are not worth a line on every manage.py run.
    "loggers": {"axes": {"level": "WARNING"}},
}

# --- OMS business settings (all overridable from the environment) -----------
# Payment deadline per order type, in minutes.
OMS_PAYMENT_TIMEOUT_MINUTES = {
    "normal": env.int("OMS_PAYMENT_TIMEOUT_NORMAL_MINUTES", default=24 * 60),
    "promo": env.int("OMS_PAYMENT_TIMEOUT_PROMO_MINUTES", default=6 * 60),
    "custom": env.int("OMS_PAYMENT_TIMEOUT_CUSTOM_MINUTES", default=48 * 60),
}
OMS_SHIPPING_FEE = Decimal(env.str("OMS_SHIPPING_FEE", default="10.00"))
OMS_FREE_SHIPPING_THRESHOLD = Decimal(env.str("OMS_FREE_SHIPPING_THRESHOLD", default="99.00"))
OMS_LARGE_ORDER_THRESHOLD = Decimal(env.str("OMS_LARGE_ORDER_THRESHOLD", default="10000.00"))
OMS_REMARK_MAX_LENGTH = env.int("OMS_REMARK_MAX_LENGTH", default=200)
# Seconds a worker may reuse an API key row it looked up (revocation takes effect within this).
OMS_API_KEY_CACHE_SECONDS = env.float("OMS_API_KEY_CACHE_SECONDS", default=5.0)
OMS_SITE_URL = env.str("OMS_SITE_URL", default="http://127.0.0.1:8000")
# The clock
OMS_CLOSE_GRACE_SECONDS = env.int("OMS_CLOSE_GRACE_SECONDS", default=0)
OMS_AUTO_CONFIRM_DAYS_AFTER_SHIPMENT = env.int("OMS_AUTO_CONFIRM_DAYS_AFTER_SHIPMENT", default=10)
OMS_AUTO_CONFIRM_DAYS_AFTER_DELIVERY = env.int("OMS_AUTO_CONFIRM_DAYS_AFTER_DELIVERY", default=7)
OMS_RISK_TIMEOUT_CLOSES = env.int("OMS_RISK_TIMEOUT_CLOSES", default=3)
OMS_RISK_WINDOW_DAYS = env.int("OMS_RISK_WINDOW_DAYS", default=30)
# Review flags raised at order creation (orders.review): a remark to read, a doubtful address.
OMS_REVIEW_REMARK = env.bool("OMS_REVIEW_REMARK", default=True)
# Only remarks containing one of these raise the remark flag; empty: every remark does.
OMS_REVIEW_REMARK_KEYWORDS = env.list(
    "OMS_REVIEW_REMARK_KEYWORDS",
    default=["地址", "电话", "发票", "改", "换", "退", "取消", "不要", "暂缓", "延迟", "合并"],
)
OMS_REVIEW_ADDRESS_MIN_LENGTH = env.int("OMS_REVIEW_ADDRESS_MIN_LENGTH", default=5)
OMS_REVIEW_ADDRESS_KEYWORDS = env.list(
    "OMS_REVIEW_ADDRESS_KEYWORDS", default=["邮政信箱", "信箱", "PO Box", "P.O. Box"]
)

# --- Fulfillment -------------------------------------------------------------------
OMS_SHIP_WITHIN_HOURS = env.int("OMS_SHIP_WITHIN_HOURS", default=48)
OMS_PICKUP_ALERT_HOURS = env.int("OMS_PICKUP_ALERT_HOURS", default=24)
OMS_TRACKING_STALE_HOURS = env.int("OMS_TRACKING_STALE_HOURS", default=48)
# Minutes a paid order waits before allocation, so late changes and merged parcels happen first.
OMS_RELEASE_DELAY_MINUTES = env.int("OMS_RELEASE_DELAY_MINUTES", default=0)
# Put a new order's units into a pending parcel of the same customer, address and warehouse.
OMS_AUTO_MERGE = env.bool("OMS_AUTO_MERGE", default=True)
KUAIDI100_KEY = env.str("KUAIDI100_KEY", default="")
KUAIDI100_CUSTOMER = env.str("KUAIDI100_CUSTOMER", default="")
KUAIDI100_SALT = env.str("KUAIDI100_SALT", default="")
KUAIDI100_POLL_URL = env.str("KUAIDI100_POLL_URL", default="https://poll.kuaidi100.com/poll")

# --- After-sales (售后) ---------------------------------------------------------------
OMS_AFTERSALE_PERIOD_DAYS = env.int("OMS_AFTERSALE_PERIOD_DAYS", default=15)
OMS_AFTERSALE_RESPOND_HOURS = env.int("OMS_AFTERSALE_RESPOND_HOURS", default=48)
OMS_AFTERSALE_TIMEOUT_POLICY = env.str("OMS_AFTERSALE_TIMEOUT_POLICY", default="auto_approve")  # or "escalate"
OMS_AFTERSALE_RETURN_SHIP_DAYS = env.int("OMS_AFTERSALE_RETURN_SHIP_DAYS", default=7)
OMS_AFTERSALE_RECEIVE_DAYS = env.int("OMS_AFTERSALE_RECEIVE_DAYS", default=10)
# Requests whose money is above this need 主管 to approve; empty means no limit.
OMS_AFTERSALE_APPROVAL_LIMIT = (
    Decimal(env.str("OMS_AFTERSALE_APPROVAL_LIMIT", default="2000.00"))
    if env.str("OMS_AFTERSALE_APPROVAL_LIMIT", default="2000.00")
    else None
)
OMS_RETURN_FREIGHT_CAP = Decimal(env.str("OMS_RETURN_FREIGHT_CAP", default="12.00"))
# Where customers send returns (the 售后退货地址 message): receiver, phone, address.
OMS_RETURN_ADDRESS = env.str(
    "OMS_RETURN_ADDRESS", default="OMS 退货组 0571-88880000 浙江省杭州市余杭区文一西路 1 号 退货仓"
)

# --- Payment gateways -----------------------------------------------------------
# A channel with real credentials (ALIPAY_APP_ID / WECHATPAY_MCHID) talks to its gateway. One
# without them talks to the built-in sandbox gateway (its keys live in SANDBOX_KEY_DIR) only
# while OMS_SANDBOX_ENABLED is on; otherwise starting a payment on it answers 409
# gateway_not_configured. The sandbox's cashier page marks an order paid without money, so it is
# off unless the settings module turns it on: dev and test do, prod only on request (staging).
# The adapters and the verification code are the same either way; only base URLs and keys differ.
OMS_SANDBOX_ENABLED = env.bool("OMS_SANDBOX_ENABLED", default=False)
# The sandbox carrier (fulfillment.sandbox) pushes really signed Kuaidi100-format tracking; it
# follows the sandbox gateway's switch unless set on its own, and is off in production.
OMS_CARRIER_SANDBOX_ENABLED = env.bool("OMS_CARRIER_SANDBOX_ENABLED", default=OMS_SANDBOX_ENABLED)
# Seconds between the sandbox carrier's scans, and a fault forced on every sandbox parcel
# ("", "problem", "refused" or "stall"; by default the number's last two digits choose: 02, 14, 99).
OMS_CARRIER_SANDBOX_STEP_SECONDS = env.int("OMS_CARRIER_SANDBOX_STEP_SECONDS", default=60)
OMS_CARRIER_SANDBOX_FAULT = env.str("OMS_CARRIER_SANDBOX_FAULT", default="")
# The online channels this shop takes payments on; the deploy check asks only these for credentials.
OMS_PAYMENT_CHANNELS = env.list("OMS_PAYMENT_CHANNELS", default=["alipay", "wechatpay"])
ALIPAY_APP_ID = env.str("ALIPAY_APP_ID", default="")
ALIPAY_SELLER_ID = env.str("ALIPAY_SELLER_ID", default="")
ALIPAY_PUBLIC_KEY_PATH = env.str("ALIPAY_PUBLIC_KEY_PATH", default="")
ALIPAY_PRIVATE_KEY_PATH = env.str("ALIPAY_PRIVATE_KEY_PATH", default="")
ALIPAY_GATEWAY_URL = env.str("ALIPAY_GATEWAY_URL", default="https://openapi.alipay.com/gateway.do")
WECHATPAY_MCHID = env.str("WECHATPAY_MCHID", default="")
WECHATPAY_APPID = env.str("WECHATPAY_APPID", default="")
WECHATPAY_APIV3_KEY = env.str("WECHATPAY_APIV3_KEY", default="")
WECHATPAY_PUBLIC_KEY_PATH = env.str("WECHATPAY_PUBLIC_KEY_PATH", default="")
WECHATPAY_PUBLIC_KEY_ID = env.str("WECHATPAY_PUBLIC_KEY_ID", default="")
WECHATPAY_PRIVATE_KEY_PATH = env.str("WECHATPAY_PRIVATE_KEY_PATH", default="")
WECHATPAY_CERT_SERIAL = env.str("WECHATPAY_CERT_SERIAL", default="")
WECHATPAY_API_BASE = env.str("WECHATPAY_API_BASE", default="https://api.mch.weixin.qq.com")
GATEWAY_HTTP_TIMEOUT = env.float("GATEWAY_HTTP_TIMEOUT", default=10.0)
SANDBOX_KEY_DIR = env.path("SANDBOX_KEY_DIR", default=VAR_DIR / "sandbox")
# Multiplies the gateways' real notify retry schedule (4m, 10m, ... / 15s, 15s, ...).
SANDBOX_RETRY_SCALE = env.float("SANDBOX_RETRY_SCALE", default=0.01)
OMS_LATE_PAYMENT_POLICY = env.str("OMS_LATE_PAYMENT_POLICY", default="refund")  # or "revive"

# --- Reminders (催付) -------------------------------------------------------------
OMS_PAY_LINK_TEMPLATE = env.str("OMS_PAY_LINK_TEMPLATE", default="{site}/payments/pay/{order_no}/")
OMS_REMINDER_QUIET_HOURS = env.str("OMS_REMINDER_QUIET_HOURS", default="22:00-08:00")
OMS_REMINDER_ORDER_CAP = env.int("OMS_REMINDER_ORDER_CAP", default=2)
OMS_REMINDER_DAILY_CAP = env.int("OMS_REMINDER_DAILY_CAP", default=3)
OMS_REMINDER_MIN_GAP_MINUTES = env.int("OMS_REMINDER_MIN_GAP_MINUTES", default=60)
OMS_REMINDER_LOOKBACK_HOURS = env.int("OMS_REMINDER_LOOKBACK_HOURS", default=72)
OMS_REMINDER_MAX_LATENESS_MINUTES = env.int("OMS_REMINDER_MAX_LATENESS_MINUTES", default=360)
OMS_REMINDER_SCHEDULE_LIMIT = env.int("OMS_REMINDER_SCHEDULE_LIMIT", default=1000)
OMS_REMINDER_SEND_BATCH_SIZE = env.int("OMS_REMINDER_SEND_BATCH_SIZE", default=100)
OMS_REMINDER_SEND_MAX_BATCHES = env.int("OMS_REMINDER_SEND_MAX_BATCHES", default=10)
OMS_REMINDER_MAX_ATTEMPTS = env.int("OMS_REMINDER_MAX_ATTEMPTS", default=3)
OMS_REMINDER_RETRY_BASE_SECONDS = env.int("OMS_REMINDER_RETRY_BASE_SECONDS", default=60)
OMS_REMINDER_SENDING_LEASE_MINUTES = env.int("OMS_REMINDER_SENDING_LEASE_MINUTES", default=10)
OMS_REMINDER_EMAIL_FROM = env.str("OMS_REMINDER_EMAIL_FROM", default="")
OMS_SMS_PROVIDER = env.str("OMS_SMS_PROVIDER", default="logging")
OMS_SMS_HTTP_TIMEOUT = env.float("OMS_SMS_HTTP_TIMEOUT", default=5.0)
ALIYUN_SMS_ACCESS_KEY_ID = env.str("ALIYUN_SMS_ACCESS_KEY_ID", default="")
ALIYUN_SMS_ACCESS_KEY_SECRET = env.str("ALIYUN_SMS_ACCESS_KEY_SECRET", default="")
ALIYUN_SMS_SIGN_NAME = env.str("ALIYUN_SMS_SIGN_NAME", default="")
ALIYUN_SMS_TEMPLATE_CODE = env.str("ALIYUN_SMS_TEMPLATE_CODE", default="")
ALIYUN_SMS_ENDPOINT = env.str("ALIYUN_SMS_ENDPOINT", default="https://dysmsapi.aliyuncs.com")
ALIYUN_SMS_REGION_ID = env.str("ALIYUN_SMS_REGION_ID", default="cn-hangzhou")
