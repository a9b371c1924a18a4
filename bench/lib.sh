# Shared by the benchmark wrappers (bench/run.sh, bench/scale.sh, bench/concurrency.sh); sourced,
# from the repository root. run_python_bench runs a Python benchmark in the background so that the wrapper's traps
# can stop it: SIGTERM, on which it cleans up after itself (daemons by PID, its namespaces).
# At exit, any namespace a killed run left behind is removed (only those of runs that are gone).

bench_pid=
bench_cleanup() {
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
  fi
  python3 bench/netbench.py --sweep || true
}

# run_python_bench SCRIPT [ARGS...]: returns the script's exit status.
run_python_bench() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  python3 "$@" &
  bench_pid=$!
  local status=0
  wait "$bench_pid" || status=$?
  bench_pid=
  return "$status"
}

# progress TEXT: redraws one progress line on stderr. Only on a terminal: not with -q (the
# wrappers export BENCH_QUIET=1, which the Python benchmarks read too), not with TERM=dumb,
# not when stderr is a pipe or a file.
progress() {
  [ -t 2 ] && [ "${BENCH_QUIET:-}" != 1 ] && [ "${TERM:-}" != dumb ] || return 0
  printf '\r\033[K%s' "$1" >&2
  progress_drawn=1
}
# progress_clear: erases the line, before a message or at the end of a loop.
progress_clear() {
  [ -n "${progress_drawn:-}" ] || return 0
  printf '\r\033[K' >&2
  progress_drawn=
}
