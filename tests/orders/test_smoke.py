def test_create_order_contract(api, order_body, tshirt):
    response = api.post("/api/v1/orders/", order_body, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending_payment"
    assert body["status_display"] == "待付款"
    assert body["goods_total"] == "210.00"
    assert body["payable_total"] == "210.00"
    assert body["lines"][0]["unit_price"] == "70.00"
    assert body["payment_deadline"].endswith("+08:00")
