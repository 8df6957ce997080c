-- wrk script: every request is one POST /order for one burger.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"products": [{"product_id": 1, "quantity": 1}]}'
