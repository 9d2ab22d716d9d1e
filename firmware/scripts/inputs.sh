# Sourced by esp8266-check.sh and emulate-check.sh: report a missing input
# (say) and check that a git checkout is at its pinned commit (pinned).
# TARGET names the make target in the messages.
missing=0
say() { echo "make $TARGET: $*" >&2; missing=1; }
pinned() { # dir commit name
  if [ -e "$1/.git" ]; then
    head=$(git -C "$1" rev-parse HEAD 2>/dev/null)
    [ "$head" = "$2" ] || say "$3 at $1 is at ${head:-?}, not the pinned $2 (git -C $1 checkout $2)"
  fi
}
