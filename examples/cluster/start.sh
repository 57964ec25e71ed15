#!/usr/bin/env bash
# Two Node-RED instances serving one LwM2M fleet, on this machine (127.0.0.1 only):
#   devices -> nginx (UDP, sticky per device address) -> Node-RED a | Node-RED b -> one Redis
# Runs in the foreground; Ctrl-C (or SIGTERM) stops all of it.
#
#   bash examples/cluster/start.sh [LOG_DIR]
#
# LOG_DIR (default: a new temporary directory) receives every log, the pid files, the generated
# nginx.conf and each instance's Node-RED user directory. Ports, from the environment:
#   CLUSTER_COAP_PORT (5683)    where devices connect (nginx)
#   CLUSTER_A_COAP_PORT (5701)  CLUSTER_B_COAP_PORT (5702)   each instance's plain CoAP port
#   CLUSTER_A_HTTP_PORT (1881)  CLUSTER_B_HTTP_PORT (1882)   each instance's editor and HTTP endpoints
#   CLUSTER_REDIS_PORT (6380)   the Redis started here (not a system one on 6379)
#   CLUSTER_PROXY_TIMEOUT (1h)  how long nginx keeps a silent device's session (see nginx.conf.template)
# Binaries: nginx with the stream module, redis-server, node; Node-RED from this checkout's
# node_modules (a development dependency), else NODE_RED, else node-red on the PATH.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

COAP_PORT="${CLUSTER_COAP_PORT:-5683}"
A_COAP_PORT="${CLUSTER_A_COAP_PORT:-5701}"
B_COAP_PORT="${CLUSTER_B_COAP_PORT:-5702}"
A_HTTP_PORT="${CLUSTER_A_HTTP_PORT:-1881}"
B_HTTP_PORT="${CLUSTER_B_HTTP_PORT:-1882}"
REDIS_PORT="${CLUSTER_REDIS_PORT:-6380}"
PROXY_TIMEOUT="${CLUSTER_PROXY_TIMEOUT:-1h}"
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so

fail() {
  echo "start.sh: $*" >&2
  exit 1
}

for port in "$COAP_PORT" "$A_COAP_PORT" "$B_COAP_PORT" "$A_HTTP_PORT" "$B_HTTP_PORT" "$REDIS_PORT"; do
  [[ "$port" =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || fail "\"$port\" is not a port number (1-65535)"
done
[[ "$PROXY_TIMEOUT" =~ ^[0-9]+(ms|s|m|h|d)?$ ]] || fail "CLUSTER_PROXY_TIMEOUT \"$PROXY_TIMEOUT\" is not an nginx time such as 1h or 3600s"

# ---- what must be installed: said clearly, before anything starts ----
# a binary on the PATH, or (sbin is often not on a user's PATH) in one of the given places
find_binary() {
  local name="$1"
  shift
  if command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
    return
  fi
  local candidate
  for candidate in "$@"; do
    if [ -x "$candidate" ]; then
      echo "$candidate"
      return
    fi
  done
  return 1
}
NGINX="$(find_binary nginx /usr/sbin/nginx)" || fail "nginx is missing: install it (Debian: apt-get install nginx-light libnginx-mod-stream, or nginx libnginx-mod-stream)"
REDIS_SERVER="$(find_binary redis-server /usr/bin/redis-server /usr/sbin/redis-server)" || fail "redis-server is missing: install it (Debian: apt-get install redis-server)"
NODE="$(find_binary node)" || fail "node is missing: install Node.js 18.5 or later"
if [ -n "${NODE_RED:-}" ]; then
  [ -x "$NODE_RED" ] || fail "NODE_RED=$NODE_RED is not an executable"
elif [ -x "$ROOT/node_modules/.bin/node-red" ]; then
  NODE_RED="$ROOT/node_modules/.bin/node-red"
else
  NODE_RED="$(find_binary node-red)" || fail "node-red is missing: run npm install in $ROOT (it is a development dependency), or set NODE_RED to a node-red binary"
fi
[ -f "$ROOT/dist/nodes/lwm2m-server.js" ] || fail "the palette is not built ($ROOT/dist is missing): run npm run build in $ROOT"
# Debian builds the stream module as a loadable module (libnginx-mod-stream); other builds have it inside
if [ -f "$STREAM_MODULE" ]; then
  LOAD_STREAM_MODULE="load_module $STREAM_MODULE;"
elif "$NGINX" -V 2>&1 | grep -Eq -- '--with-stream( |$)'; then
  LOAD_STREAM_MODULE="# the stream module is built into this nginx"
else
  fail "nginx has no stream module ($STREAM_MODULE is missing): install it (Debian: apt-get install libnginx-mod-stream)"
fi

SETSID="$(command -v setsid || true)"

# ---- the log directory ----
if [ $# -ge 1 ]; then
  DIR="$1"
  mkdir -p "$DIR"
else
  DIR="$(mktemp -d "${TMPDIR:-/tmp}/lwm2m-cluster.XXXXXX")"
fi
DIR="$(cd "$DIR" && pwd)"

# ---- starting and stopping ----
declare -A PIDS=()
# stopped in this order: the instances first (they close their sockets and Redis connections), then
# the balancer, then Redis
ORDER=("node-red b" "node-red a" nginx redis)
STOPPING=0
# a readiness check under way (stopped with the rest)
WAITER=""

# Whether a child still runs (a child that exited stays a zombie until waited for: not running).
running() {
  kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

stop_one() {
  local name="$1" pid="${PIDS[$1]:-}"
  [ -n "$pid" ] || return 0
  if running "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    local tenths=0
    while running "$pid" && ((tenths < 150)); do
      sleep 0.1
      tenths=$((tenths + 1))
    done
    if running "$pid"; then
      echo "$name did not stop within 15 s: killed" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  unset "PIDS[$name]"
  rm -f "$DIR/${name// /-}.pid"
}

cleanup() {
  local status=$?
  trap - EXIT
  # a second Ctrl-C must not cut the stopping short: the pieces, in sessions of their own, would stay
  trap '' INT TERM
  STOPPING=1
  if [ -n "$WAITER" ]; then kill "$WAITER" 2>/dev/null || true; fi
  if ((${#PIDS[@]} > 0)); then
    echo "stopping ..."
    local name
    for name in "${ORDER[@]}"; do stop_one "$name"; done
    echo "stopped (logs in $DIR)"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts "$@" in the background as $name, its output in $DIR/$log. In a session of its own (setsid:
# the same process, not a fork, as it does not lead a process group), so that Ctrl-C in the terminal
# reaches this script only, which then stops everything in order (else each piece would stop at
# once by itself, Redis and nginx under the instances still closing).
launch() {
  local name="$1" log="$2"
  shift 2
  $SETSID "$@" >"$DIR/$log" 2>&1 &
  PIDS[$name]=$!
  echo "$!" >"$DIR/${name// /-}.pid"
}

# wait-ready.js in the background: a signal to this script interrupts `wait` (not a foreground command)
wait_ready() {
  "$NODE" "$HERE/wait-ready.js" "$@" &
  WAITER=$!
  local code=0
  wait "$WAITER" || code=$?
  WAITER=""
  return "$code"
}

# shows the end of a log after a failure
tail_of() {
  echo "--- the end of $DIR/$1:" >&2
  tail -n 30 "$DIR/$1" >&2 || true
}

# Redis: in memory only, a directory of its own
mkdir -p "$DIR/redis"
launch redis redis.log "$REDIS_SERVER" --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DIR/redis" --save '' --appendonly no --daemonize no
wait_ready redis "$REDIS_PORT" "${PIDS[redis]}" || { tail_of redis.log; fail "redis-server did not start on port $REDIS_PORT"; }

# nginx: its configuration made from the template, run with the log directory as its prefix
mkdir -p "$DIR/nginx"
sed -e "s|@LOAD_STREAM_MODULE@|$LOAD_STREAM_MODULE|" -e "s|@DIR@|$DIR/nginx|g" -e "s|@COAP_PORT@|$COAP_PORT|g" \
  -e "s|@A_COAP_PORT@|$A_COAP_PORT|g" -e "s|@B_COAP_PORT@|$B_COAP_PORT|g" -e "s|@PROXY_TIMEOUT@|$PROXY_TIMEOUT|g" \
  "$HERE/nginx.conf.template" >"$DIR/nginx/nginx.conf"
NGINX_ARGS=(-p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log")
"$NGINX" -t -q "${NGINX_ARGS[@]}" || fail "nginx does not accept $DIR/nginx/nginx.conf (see above)"
launch nginx nginx/nginx.log "$NGINX" "${NGINX_ARGS[@]}"
# nginx writes its pid file once its sockets are bound
tenths=0
until [ -s "$DIR/nginx/nginx.pid" ]; do
  running "${PIDS[nginx]}" || { tail_of nginx/error.log; fail "nginx did not start (UDP port $COAP_PORT taken?)"; }
  ((tenths++ < 300)) || fail "nginx did not write its pid file within 30 s"
  sleep 0.1
done

# the Node-RED instances: each a user directory with the palette linked in and the cluster flow
PALETTE="$(cd "$ROOT" && "$NODE" -p 'require("./package.json").name')"
start_instance() {
  local instance="$1" coap_port="$2" http_port="$3"
  local user_dir="$DIR/$instance"
  mkdir -p "$user_dir/node_modules/$(dirname "$PALETTE")"
  ln -sfn "$ROOT" "$user_dir/node_modules/$PALETTE"
  printf '{ "name": "lwm2m-cluster-%s", "private": true, "dependencies": { "%s": "file:%s" } }\n' "$instance" "$PALETTE" "$ROOT" >"$user_dir/package.json"
  # the flow afresh at every start: what the editor deployed before is replaced
  cp "$HERE/flows.json.template" "$user_dir/flows.json"
  launch "node-red $instance" "node-red-$instance.log" env LWM2M_INSTANCE="$instance" LWM2M_COAP_PORT="$coap_port" \
    LWM2M_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
    "$NODE_RED" --settings "$HERE/settings.js" --userDir "$user_dir" --port "$http_port"
}
start_instance a "$A_COAP_PORT" "$A_HTTP_PORT"
start_instance b "$B_COAP_PORT" "$B_HTTP_PORT"
for instance in a b; do
  http_port="$A_HTTP_PORT"
  [ "$instance" = b ] && http_port="$B_HTTP_PORT"
  wait_ready node-red "$http_port" "${PIDS[node-red $instance]}" \
    || { tail_of "node-red-$instance.log"; fail "Node-RED $instance is not serving (HTTP port $http_port)"; }
done

cat <<EOF
LwM2M cluster ready (logs in $DIR)
  devices connect to  coap://127.0.0.1:$COAP_PORT   (nginx, UDP, sticky per device address and port)
  instance a          http://127.0.0.1:$A_HTTP_PORT/   CoAP 127.0.0.1:$A_COAP_PORT   log $DIR/node-red-a.log
  instance b          http://127.0.0.1:$B_HTTP_PORT/   CoAP 127.0.0.1:$B_COAP_PORT   log $DIR/node-red-b.log
  registrations       http://127.0.0.1:$A_HTTP_PORT/devices   http://127.0.0.1:$B_HTTP_PORT/devices
  read a device       http://127.0.0.1:$A_HTTP_PORT/read?ep=ENDPOINT&path=/3/0   (or through b: port $B_HTTP_PORT)
  Redis               redis://127.0.0.1:$REDIS_PORT   (keys lwm2m-cluster:*)
  stop one instance   kill \$(cat $DIR/node-red-b.pid)
Ctrl-C stops everything.
EOF

# Foreground until stopped: an instance may stop alone (its devices move to the other one); without
# Redis or nginx, or without any instance, the cluster is over.
while ((STOPPING == 0)); do
  wait -n || true
  for name in "${ORDER[@]}"; do
    pid="${PIDS[$name]:-}"
    [ -n "$pid" ] || continue
    running "$pid" && continue
    code=0
    wait "$pid" 2>/dev/null || code=$?
    unset "PIDS[$name]"
    rm -f "$DIR/${name// /-}.pid"
    echo "$name stopped (exit code $code)"
    case "$name" in
      redis | nginx) fail "$name is needed: stopping the cluster" ;;
    esac
  done
  [ -n "${PIDS[node-red a]:-}" ] || [ -n "${PIDS[node-red b]:-}" ] || fail "no Node-RED instance is left: stopping the cluster"
done
