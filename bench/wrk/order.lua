-- wrk script: one order per POST /v1/orders, cycling symbols, sides and prices
-- so that every shard gets traffic. Keep-alive; BENCH_KEY picks the account.
local symbols = {"AAPL", "MSFT", "GOOG", "AMZN", "TSLA"}
local bodies = {}
for i = 0, 99 do
  local side = (i % 2 == 0) and "buy" or "sell"
  local price = string.format("%d.%02d", 100 + (i % 7), i % 100)
  bodies[#bodies + 1] = string.format(
    '{"symbol":"%s","side":"%s","type":"limit","price":"%s","qty":%d}',
    symbols[(i % #symbols) + 1], side, price, 1 + i % 50)
end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "dev-key-alice")
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/orders", nil, bodies[(n % #bodies) + 1])
end
