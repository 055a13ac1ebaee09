#!/bin/sh
# forklab's container entry point: one image, two roles, configured by environment variables.
#
#   FORKLAB_ROLE=node  (default)  `forklab node`: every FORKLAB_* option of docs/api.md applies
#                                 (FORKLAB_NETWORK, FORKLAB_DATADIR, FORKLAB_CONNECT...); extra
#                                 arguments are passed on as flags.
#   FORKLAB_ROLE=miner            a paced miner (`forklab devnet miner`, docs/devnet.md) against
#                                 the node API at FORKLAB_MINER_RPC (http://HOST:PORT), with
#                                 FORKLAB_RPC_USER / FORKLAB_RPC_PASSWORD, mining its share
#                                 FORKLAB_MINER_SHARE (default 1) of one block every
#                                 FORKLAB_BLOCK_TIME seconds (default 5) and paying the devnet
#                                 wallet FORKLAB_MINER_WALLET (default: FORKLAB_MINER_NAME, itself
#                                 "miner" by default) or the address FORKLAB_MINER_ADDRESS.
#   healthcheck (as the command)  exit 0 when the node (for a miner: its node) answers RPC.
#
# It runs outside Docker too (the tests start a node and a miner with it): only POSIX sh and
# the Python that has forklab installed (FORKLAB_PYTHON, default python3) are needed.
set -eu

python="${FORKLAB_PYTHON:-python3}"
role="${FORKLAB_ROLE:-node}"

fail() {
    echo "forklab entrypoint: $*" >&2
    exit 2
}

if [ "${1:-}" = "healthcheck" ]; then
    case "$role" in
        node) exec "$python" -m node rpc --timeout 5 getblockcount >/dev/null ;;
        miner) exec "$python" -m node rpc --timeout 5 --rpc "${FORKLAB_MINER_RPC:?}" getblockcount >/dev/null ;;
        *) fail "FORKLAB_ROLE must be node or miner, not '$role'" ;;
    esac
fi

case "$role" in
    node)
        exec "$python" -m node node "$@"
        ;;
    miner)
        [ -n "${FORKLAB_MINER_RPC:-}" ] || fail "set FORKLAB_MINER_RPC to the node's API, e.g. http://node1:28443"
        [ -n "${FORKLAB_RPC_USER:-}" ] && [ -n "${FORKLAB_RPC_PASSWORD:-}" ] \
            || fail "set FORKLAB_RPC_USER and FORKLAB_RPC_PASSWORD to the node's RPC credentials"
        name="${FORKLAB_MINER_NAME:-miner}"
        interval=$("$python" -c 'import sys; print(float(sys.argv[1]) / float(sys.argv[2]))' \
            "${FORKLAB_BLOCK_TIME:-5}" "${FORKLAB_MINER_SHARE:-1}") \
            || fail "FORKLAB_BLOCK_TIME and FORKLAB_MINER_SHARE must be numbers"
        if [ -n "${FORKLAB_MINER_ADDRESS:-}" ]; then
            set -- --address "$FORKLAB_MINER_ADDRESS" "$@"
        else
            set -- --wallet "${FORKLAB_MINER_WALLET:-$name}" "$@"
        fi
        # The RPC credentials stay in the environment (the miner reads them there), off the
        # command line where any process could see them.
        exec "$python" -m node.devnet miner --name "$name" --rpc "$FORKLAB_MINER_RPC" \
            --interval "$interval" --seed "${FORKLAB_MINER_SEED:-0}" \
            --backend "${FORKLAB_MINER_BACKEND:-cpu}" "$@"
        ;;
    *)
        fail "FORKLAB_ROLE must be node or miner, not '$role'"
        ;;
esac
