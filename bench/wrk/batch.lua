-- wrk script: POST /v1/orders/batch with BENCH_BATCH orders per request (default 100).
local size = tonumber(os.getenv("BENCH_BATCH") or "100")
local symbols = {"AAPL", "MSFT", "GOOG", "AMZN", "TSLA"}
local items = {}
for i = 0, size - 1 do
  local side = (i % 2 == 0) and "buy" or "sell"
  items[#items + 1] = string.format(
    '{"symbol":"%s","side":"%s","type":"limit","price":"%d.%02d","qty":%d}',
    symbols[(i % #symbols) + 1], side, 100 + (i % 7), i % 100, 1 + i % 50)
end
wrk.method = "POST"
wrk.path = "/v1/orders/batch"
wrk.body = '{"orders":[' .. table.concat(items, ",") .. ']}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer dev-key-alice"
