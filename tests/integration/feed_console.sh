#!/usr/bin/env bash
# The live console page in a real browser (issue 16, part 3): headless
# Chromium (Debian's, driven by playwright-core from tests/js) opens the
# page the feed serves at /, enters dev-key-alice, sends a sell and a
# crossing buy through the page's order form — cross-origin POSTs to ingest,
# so ingest's CORS for the feed's origin is exercised by a real browser —
# and sees both orders FILLED and the trade in the page, then a resume after
# a disconnection, a cancel and an error answer (tests/js/console.mjs lists
# every step). Everything is real: ingest, matcher, recorder and the feed on
# the test stack. A screenshot is saved as $OP_STACK_DIR/feed_console.png
# and copied to $OP_TEST_OUTPUT (default var/test-output/), both printed.
#
# Skipped (exit 0) until orderpipe-feed is built; a missing node, chromium
# or tests/js/node_modules is a failure: ops/install-deps.sh installs them.
set -uo pipefail
. "$OP_ROOT/tests/lib/testlib.sh"
t_skip_unless_built feed_console
if [[ ! -x "$OP_BUILD/bin/orderpipe-feed" ]]; then
	printf 'feed_console: SKIPPED: orderpipe-feed is not built yet\n'
	exit 0
fi

chromium="${CHROMIUM:-/usr/bin/chromium}"
js="$OP_ROOT/tests/js"
missing=""
command -v node >/dev/null || missing+=" node (Debian package nodejs)"
[[ -x "$chromium" ]] || missing+=" $chromium (Debian package chromium)"
[[ -d "$js/node_modules/playwright-core" ]] || missing+=" $js/node_modules/playwright-core (npm ci in tests/js)"
if [[ -n "$missing" ]]; then
	t_fail "missing:$missing — run ops/install-deps.sh"
	t_done
	exit 1
fi

# A clean slate: the orders earlier tests left resting would trade with the
# page's orders.
t_clean_slate

ingest_port="$(op_free_port)"
feed_port="$(op_free_port "$ingest_port")"
ingest="http://127.0.0.1:$ingest_port"
feed="http://127.0.0.1:$feed_port"
t_start fc-ingest orderpipe-ingest INGEST_PORT="$ingest_port" INGEST_CORS_ORIGINS="$feed"
t_start fc-matcher orderpipe-matcher MATCHER_METRICS_PORT=0
t_start fc-recorder orderpipe-recorder RECORDER_METRICS_PORT=0
t_start fc-feed orderpipe-feed FEED_PORT="$feed_port" FEED_INGEST_URL="$ingest" \
	FEED_CONSOLE_DIR="$OP_ROOT/feed/console"
op_wait_until 30 "ingest on $ingest_port" curl -sf "$ingest/healthz" || t_fail "ingest did not start"
op_wait_until 30 "the feed on $feed_port" curl -sf "$feed/healthz" || t_fail "the feed did not start"
if ((T_FAILS > 0)); then
	tail -n 20 "$OP_STACK_DIR"/fc-*.log >&2
	t_done
	exit 1
fi

# What the page is built on: the feed serves it and tells it where ingest is.
t_http GET "$feed/"
t_eq "GET / on the feed: status" "$T_STATUS" 200
t_match "GET / is the console page" "$T_BODY" '<title>orderpipe console</title>'
t_http GET "$feed/console.js"
t_eq "GET /console.js: status" "$T_STATUS" 200
t_http GET "$feed/config.json"
t_eq "GET /config.json: status" "$T_STATUS" 200
t_eq "config.json: ingest_url and the symbols of SYMBOLS_FILE" \
	"$(python3 -c 'import json,sys; c=json.loads(sys.argv[1]); print(c["ingest_url"], " ".join(sorted(c["symbols"])))' "$T_BODY" 2>&1)" \
	"$ingest AAPL AMZN GOOG MSFT TSLA"

shot="$OP_STACK_DIR/feed_console.png"
(cd "$js" && CONSOLE_URL="$feed/" INGEST_URL="$ingest" SCREENSHOT="$shot" CHROMIUM="$chromium" \
	timeout -k 10 300 node console.mjs) 2>&1 | tee "$OP_STACK_DIR/feed_console.log"
rc=$? # node's status (pipefail)
t_eq "tests/js/console.mjs (the page in Chromium): exit status" "$rc" 0

t_eq "screenshot saved (a PNG)" "$(head -c 8 "$shot" 2>/dev/null | od -An -c | tr -d ' \n')" '211PNG\r\n032\n'
out="${OP_TEST_OUTPUT:-$OP_ROOT/var/test-output}"
if [[ -f "$shot" ]] && mkdir -p "$out" && cp "$shot" "$out/feed_console.png"; then
	printf 'screenshot: %s (copied to %s)\n' "$shot" "$out/feed_console.png"
else
	t_fail "cannot copy the screenshot '$shot' to '$out'"
fi
((rc == 0)) || tail -n 30 "$OP_STACK_DIR"/fc-*.log >&2

t_done
