"""The built-in rules: created by migrations 0002 (BUILTIN_RULES) and 0004 (NOTICE_RULES), and
by `reminder_rules_install_builtin()`. The lists stay apart because 0002 runs before the
notice purposes exist.

Plain data only (no model imports), so the data migration can use it with historical models.
Templates use Django template syntax; the variables are listed in rendering.TEMPLATE_VARIABLES.
The texts are polite on purpose: they inform, offer the link, and say it is fine to ignore them.
"""

CONFIRMATION_TEXT = (
    "您好，您在{{ shop }}的订单 {{ order_no }} 已提交：{{ goods }}，应付 ¥{{ amount }}，支付方式：{{ payment_method }}。"
    "{% if is_cod %}收货时付款即可。{% elif is_paid %}已收到您的付款，我们会尽快为您发货。"
    "{% else %}请在 {{ deadline }} 前完成付款，逾期订单将自动关闭。付款链接：{{ pay_link }}{% endif %}"
)

AFTER_CREATED_TEXT = (
    "您好，您在{{ shop }}的订单 {{ order_no }}（{{ goods }}，¥{{ amount }}）还未付款，商品已为您保留，"
    "还有{{ time_left }}可以付款。需要的话点此完成付款：{{ pay_link }} 如已付款或不再需要，请忽略本消息。"
)

BEFORE_DEADLINE_TEXT = (
    "温馨提示：您的订单 {{ order_no }}（{{ goods }}，¥{{ amount }}）将在{{ time_left }}后（{{ deadline }}）自动关闭。"
    "如仍需要，可点此付款：{{ pay_link }} 如已付款或不再需要，请忽略本消息。"
)

PAYMENT_TROUBLE_TEXT = (
    "您好，您的订单 {{ order_no }}（¥{{ amount }}）的付款似乎没有完成。如果支付遇到问题，"
    "可以换一种支付方式再试：{{ pay_link }} 也欢迎联系客服，我们很乐意帮忙。"
)

CLOSED_TEXT = "您的订单 {{ order_no }}（{{ goods }}）因超时未付款已自动关闭，没有产生任何扣款。如仍需要，欢迎重新下单。"

BUILTIN_RULES = [
    {
        "code": "order_confirmation",
        "name": "下单确认",
        "purpose": "confirmation",
        "kind": "after_created",
        "offset_minutes": 0,
        "channel": "sms",
        "template": CONFIRMATION_TEXT,
        "email_subject": "订单 {{ order_no }} 已提交",
    },
    {
        "code": "remind_after_created",
        "name": "下单30分钟未付款提醒",
        "purpose": "payment_reminder",
        "kind": "after_created",
        "offset_minutes": 30,
        "channel": "sms",
        "template": AFTER_CREATED_TEXT,
        "email_subject": "订单 {{ order_no }} 待付款",
    },
    {
        "code": "remind_before_deadline",
        "name": "付款截止前2小时提醒",
        "purpose": "payment_reminder",
        "kind": "before_deadline",
        "offset_minutes": 120,
        "channel": "sms",
        "template": BEFORE_DEADLINE_TEXT,
        "email_subject": "订单 {{ order_no }} 即将关闭",
    },
    {
        "code": "payment_trouble",
        "name": "支付遇到问题？",
        "purpose": "payment_reminder",
        "kind": "after_payment_started",
        "offset_minutes": 3,
        "channel": "sms",
        "template": PAYMENT_TROUBLE_TEXT,
        "email_subject": "订单 {{ order_no }} 付款未完成",
    },
    {
        "code": "closed_notice",
        "name": "订单已关闭",
        "purpose": "closed_notice",
        "kind": "after_closed",
        "offset_minutes": 0,
        "channel": "in_app",
        "template": CLOSED_TEXT,
        "email_subject": "订单 {{ order_no }} 已关闭",
    },
]

# Seed 004 下单篇 2: "您的订单已发货，快递：顺丰速运，单号 SF…". carrier_name and tracking_no are
# the parcel's, captured when it shipped (Reminder.variables).
SHIPPED_TEXT = (
    "您好，您在{{ shop }}的订单 {{ order_no }} 已发货，快递：{{ carrier_name }}，单号 {{ tracking_no }}。"
    "商品：{{ goods }}。可凭单号查询物流进度，如有问题请联系客服。"
)

DELIVERED_TEXT = (
    "您在{{ shop }}的订单 {{ order_no }}（{{ goods }}）已签收。如非本人签收或商品有问题，"
    "请联系客服或在订单中申请售后。感谢您的惠顾！"
)

CANCELLED_TEXT = (
    "很抱歉，您在{{ shop }}的订单 {{ order_no }}（{{ goods }}）已由商家取消"
    "{% if cancel_reason %}，原因：{{ cancel_reason }}{% endif %}。"
    "{% if is_paid %}您支付的 ¥{{ paid_amount }} 将原路退回，请留意到账。{% endif %}如有疑问请联系客服。"
)

AFTERSALE_APPROVED_TEXT = (
    "您好，您在{{ shop }}的订单 {{ order_no }} 的售后申请 {{ aftersale_no }}（{{ aftersale_type }}）已同意。"
    "{% if refund_amount %}退款 ¥{{ refund_amount }} 将原路退回，请留意到账。{% endif %}"
)
AFTERSALE_RETURN_TEXT = (
    "您好，您的售后申请 {{ aftersale_no }}（订单 {{ order_no }}，{{ aftersale_type }}）已同意。请在 {{ return_days }} 天内"
    "将商品寄回：{{ return_address }}。寄出后请在订单售后页面填写快递公司和运单号，仓库收货验收后为您处理。"
)
AFTERSALE_REJECTED_TEXT = (
    "您好，您的售后申请 {{ aftersale_no }}（订单 {{ order_no }}）未能通过，原因：{{ reject_reason }}。"
    "如有疑问请联系客服。"
)
AFTERSALE_REFUNDED_TEXT = "您好，售后 {{ aftersale_no }}（订单 {{ order_no }}）的退款 ¥{{ refund_amount }} 已原路退回，请留意到账。感谢您的耐心。"

AFTERSALE_RULES = [
    {
        "code": f"aftersale_{key}",
        "name": name,
        "purpose": f"aftersale_{key}",
        "kind": "after_aftersale",
        "offset_minutes": 0,
        "channel": "sms",
        "template": text,
        "email_subject": subject,
    }
    for key, name, text, subject in [
        ("approved", "售后已同意", AFTERSALE_APPROVED_TEXT, "售后 {{ aftersale_no }} 已同意"),
        ("return", "售后退货地址", AFTERSALE_RETURN_TEXT, "售后 {{ aftersale_no }}：请寄回商品"),
        ("rejected", "售后被拒绝", AFTERSALE_REJECTED_TEXT, "售后 {{ aftersale_no }} 未通过"),
        ("refunded", "售后已退款", AFTERSALE_REFUNDED_TEXT, "售后 {{ aftersale_no }} 已退款"),
    ]
]

NOTICE_RULES = [
    {
        "code": "shipped_notice",
        "name": "发货通知",
        "purpose": "shipped_notice",
        "kind": "after_shipped",
        "offset_minutes": 0,
        "channel": "sms",
        "template": SHIPPED_TEXT,
        "email_subject": "订单 {{ order_no }} 已发货",
    },
    {
        "code": "delivered_notice",
        "name": "签收通知",
        "purpose": "delivered_notice",
        "kind": "after_delivered",
        "offset_minutes": 0,
        "channel": "in_app",
        "template": DELIVERED_TEXT,
        "email_subject": "订单 {{ order_no }} 已签收",
    },
    {
        "code": "merchant_cancelled_notice",
        "name": "商家取消通知",
        "purpose": "cancelled_notice",
        "kind": "after_merchant_cancelled",
        "offset_minutes": 0,
        "channel": "sms",
        "template": CANCELLED_TEXT,
        "email_subject": "订单 {{ order_no }} 已取消",
    },
]
