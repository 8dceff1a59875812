#!/bin/sh
# check_docs.sh -- the documentation cannot fall behind the code.
#
# Reads the tables the code is built from and checks that the docs cover
# them:
#   - every verb of verb_table[] (src/verbs.c) has an entry ".It ... Ic VERB"
#     and a JSON request "event":"VERB" in man/roomd-protocol.7;
#   - every error text of err_texts[] (src/errors.c) has an entry
#     ".It Ql TEXT" in man/roomd-protocol.7;
#   - every key of config_keys[] (src/config.c) has an entry ".It Cm KEY" in
#     man/roomd.conf.5 giving its type, its default and, for numbers, its
#     range, and a line "# KEY = DEFAULT" in etc/roomd.conf; neither names a
#     key the code does not know;
#   - every man page is clean under "mandoc -Tlint -Wwarning" (else
#     "groff -ww -z"), when one of them is installed;
#   - "systemd-analyze verify" accepts etc/roomd.service.in, when installed;
#   - roomd ($ROOMD, when set) starts on etc/roomd.conf with every key
#     uncommented.
# It names everything that is missing and exits 1 if anything is.
#
# Run by "make check" (tests/Makefile.am); by hand: sh tests/docs/check_docs.sh
# ROOMD_SRCDIR overrides the source tree (default: two levels above this file).
set -u

top=${ROOMD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
protocol=$top/man/roomd-protocol.7
confman=$top/man/roomd.conf.5
sample=$top/etc/roomd.conf
unit_in=$top/etc/roomd.service.in
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check_docs.XXXXXX") || exit 99
roomd_pid=
cleanup() {
    [ -n "$roomd_pid" ] && kill "$roomd_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 99' HUP INT TERM

problems=0
checked=0
fail() {
    echo "check_docs: FAIL: $*" >&2
    problems=$((problems + 1))
}
ok() {
    checked=$((checked + 1))
}

for f in "$top/src/verbs.c" "$top/src/errors.c" "$top/src/config.c" "$protocol" \
    "$confman" "$sample" "$unit_in"; do
    [ -r "$f" ] || { echo "check_docs: cannot read $f" >&2; exit 99; }
done

# ------------------------------------------------------------ helpers

# c_table FILE NAME: the lines of the C initializer "NAME[...] = {" ... "};".
c_table() {
    awk -v name="$2" '
        !on && index($0, name "[") && index($0, "= {") { on = 1; next }
        on && /^}[ \t]*;/ { exit }
        on { print }' "$1"
}

# man_text FILE: the roff source with the escapes the docs use turned into
# the characters they print, so strings can be compared with the code's.
man_text() {
    sed -e 's/\\&//g' -e 's/\\-/-/g' -e 's/\\(dq/"/g' -e "s/\\\\(aq/'/g" \
        -e 's/\\e/\\/g' "$1"
}

# has_line FILE STRING: whether some line of FILE is exactly STRING.
has_line() {
    awk -v want="$2" '$0 == want { found = 1; exit } END { exit !found }' "$1"
}

# ---------------------------------------------------- what the code knows

c_table "$top/src/verbs.c" verb_table |
    awk '{ s = $0
           while (match(s, /\{"[^"]*"/)) {
               print substr(s, RSTART + 2, RLENGTH - 3)
               s = substr(s, RSTART + RLENGTH) } }' >"$tmp/verbs"

c_table "$top/src/errors.c" err_texts |
    awk '{ s = $0
           while (match(s, /\] *= *"[^"]*"/)) {
               t = substr(s, RSTART, RLENGTH); sub(/^[^"]*"/, "", t)
               print substr(t, 1, length(t) - 1)
               s = substr(s, RSTART + RLENGTH) } }' >"$tmp/errors"

# One line per key: NAME, TYPE, DEFAULT, MIN, MAX separated by the ASCII
# unit separator (a tab would merge with an empty DEFAULT when read).  An entry is
# {"name", KEY_TYPE, OFF(field), "default", min, max, "help"}, over one or
# more lines.
c_table "$top/src/config.c" config_keys |
    awk '{ buf = buf " " $0 }
         END {
             n = split(buf, part, /\{"/)
             for (i = 2; i <= n; i++) {
                 e = part[i]
                 name = substr(e, 1, index(e, "\"") - 1)
                 type = ""
                 if (match(e, /KEY_[A-Z]+/)) type = substr(e, RSTART + 4, RLENGTH - 4)
                 rest = substr(e, index(e, ")") + 1)
                 def = ""
                 if (match(rest, /"[^"]*"/)) {
                     def = substr(rest, RSTART + 1, RLENGTH - 2)
                     rest = substr(rest, RSTART + RLENGTH)
                 }
                 split(rest, f, ",")
                 min = f[2]; max = f[3]
                 gsub(/^[ \t]+|[ \t]+$/, "", min); gsub(/^[ \t]+|[ \t]+$/, "", max)
                 printf "%s\037%s\037%s\037%s\037%s\n", name, type, def, min, max
             } }' >"$tmp/keys"

nverbs=$(wc -l <"$tmp/verbs")
nerrors=$(wc -l <"$tmp/errors")
nkeys=$(wc -l <"$tmp/keys")
# An empty table means the extraction broke, not that there is nothing to do.
[ "$nverbs" -gt 0 ] || fail "found no verb in verb_table[] of src/verbs.c"
[ "$nerrors" -gt 0 ] || fail "found no error text in err_texts[] of src/errors.c"
[ "$nkeys" -gt 0 ] || fail "found no key in config_keys[] of src/config.c"

man_text "$protocol" >"$tmp/protocol"
man_text "$confman" >"$tmp/confman"

# ------------------------------------------------------------- the verbs

while IFS= read -r verb; do
    if grep -Eq "^\\.It( .*)? Ic $verb( |\$)" "$tmp/protocol"; then ok; else
        fail "verb '$verb' (src/verbs.c) has no entry '.It Ic $verb' in man/roomd-protocol.7"
    fi
    if grep -Fq "\"event\":\"$verb\"" "$tmp/protocol"; then ok; else
        fail "verb '$verb' (src/verbs.c): no JSON request {\"event\":\"$verb\",...} in man/roomd-protocol.7"
    fi
done <"$tmp/verbs"

# ------------------------------------------------------- the error texts

while IFS= read -r text; do
    if [ "$text" = OK ]; then # the success status, not an error
        if grep -Fq '"status":"OK"' "$tmp/protocol"; then ok; else
            fail "the success status \"OK\" is not shown in man/roomd-protocol.7"
        fi
        continue
    fi
    if has_line "$tmp/protocol" ".It Ql $text"; then ok; else
        fail "error text '$text' (src/errors.c) has no entry '.It Ql $text' in man/roomd-protocol.7"
    fi
done <"$tmp/errors"

# ------------------------------------------------------- the config keys

# key_block KEY: the lines of KEY's entry in roomd.conf.5, up to the next
# entry or the end of the list.
key_block() {
    awk -v key="$1" '
        on && /^\.(It|El)( |$)/ { exit }
        on { print }
        $1 == ".It" && $2 == "Cm" && $3 == key { on = 1 }' "$tmp/confman"
}

sep=$(printf '\037')
while IFS="$sep" read -r key type def min max; do
    key_block "$key" >"$tmp/block"
    if ! grep -Eq "^\\.It Cm $key( |\$)" "$tmp/confman"; then
        fail "config key '$key' (src/config.c) has no entry '.It Cm $key' in man/roomd.conf.5"
    else
        ok
        case $type in
        STR) want="Type: string." ;;
        BOOL) want="Type: boolean." ;;
        *) want="Type: number" ;;
        esac
        if grep -Fq "$want" "$tmp/block"; then ok; else
            fail "man/roomd.conf.5, key '$key': expected '$want' (it is a KEY_$type)"
        fi
        if [ -z "$def" ]; then
            if grep -Fq "Default: empty" "$tmp/block"; then ok; else
                fail "man/roomd.conf.5, key '$key': expected 'Default: empty'"
            fi
        else
            # "Default:" then, on the next line, ".Ql DEFAULT" (maybe with
            # trailing punctuation).
            if awk -v def="$def" '
                    seen && ($0 == ".Ql " def || index($0, ".Ql " def " ") == 1) { found = 1; exit }
                    { seen = ($0 ~ /Default:$/) }
                    END { exit !found }' "$tmp/block"; then ok; else
                fail "man/roomd.conf.5, key '$key': expected 'Default:' followed by '.Ql $def'"
            fi
        fi
        case $type in
        INT | LONG)
            range=
            for bound in "$min" "$max"; do
                case $bound in
                *[!0-9L\ \<]*) fail "src/config.c, key '$key': cannot read the bound '$bound'"; continue ;;
                esac
                bound=$(echo "$bound" | sed 's/L//g')
                # $bound is an expression ("1 << 30"): expand it, then evaluate.
                # shellcheck disable=SC2004
                range="$range $(($bound))"
            done
            # shellcheck disable=SC2086 # split into the two bounds
            set -- $range
            if [ $# -eq 2 ]; then
                if grep -Fq "range $1 to $2" "$tmp/block"; then ok; else
                    fail "man/roomd.conf.5, key '$key': expected 'range $1 to $2'"
                fi
            fi
            ;;
        esac
    fi
    if [ -z "$def" ]; then line="# $key ="; else line="# $key = $def"; fi
    if has_line "$sample" "$line"; then ok; else
        fail "config key '$key' (src/config.c): etc/roomd.conf has no line '$line'"
    fi
done <"$tmp/keys"

# The other way round: the docs name no key the code does not know.
cut -d "$sep" -f1 "$tmp/keys" >"$tmp/keynames"
awk '$1 == ".It" && $2 == "Cm" { print $3 }' "$tmp/confman" >"$tmp/mankeys"
sed -n 's/^#* *\([a-z_][a-z_0-9]*\) *=.*/\1/p' "$sample" >"$tmp/samplekeys"
for where in mankeys:man/roomd.conf.5 samplekeys:etc/roomd.conf; do
    while IFS= read -r key; do
        if has_line "$tmp/keynames" "$key"; then ok; else
            fail "${where#*:} documents '$key', which is not a key of src/config.c"
        fi
    done <"$tmp/${where%%:*}"
done

# ---------------------------------------------------------------- lint

for page in "$top"/man/*.[1-8]; do
    if command -v mandoc >/dev/null 2>&1; then
        mandoc -Tlint -Wwarning "$page" >"$tmp/lint" 2>&1
        status=$?
        # (mandoc may also remark that the system's mandoc.db is outdated)
        out=$(grep -v 'mandoc\.db' "$tmp/lint")
        if [ "$status" -eq 0 ] && [ -z "$out" ]; then ok; else
            fail "mandoc -Tlint -Wwarning ${page#"$top"/}:"
            printf '%s\n' "$out" >&2
        fi
    elif command -v groff >/dev/null 2>&1; then
        out=$(groff -mandoc -ww -z "$page" 2>&1)
        if [ -z "$out" ]; then ok; else
            fail "groff -ww -z ${page#"$top"/}:"
            printf '%s\n' "$out" >&2
        fi
    else
        echo "check_docs: neither mandoc nor groff: man pages not linted" >&2
        break
    fi
done

# ------------------------------------------------------------ the unit

# Verify the unit as make generates it, with ExecStart pointing at the
# roomd just built (systemd-analyze wants an executable there) and the man
# pages of this tree for Documentation=.
if command -v systemd-analyze >/dev/null 2>&1 && [ -n "${ROOMD:-}" ] && [ -x "$ROOMD" ]; then
    mkdir -p "$tmp/unit"
    for page in "$top"/man/*.[1-8]; do
        section=${page##*.}
        mkdir -p "$tmp/man/man$section"
        ln -s "$page" "$tmp/man/man$section/"
    done
    sed -e "s|@bindir@|$(dirname "$ROOMD")|g" -e "s|@sysconfdir@|$top/etc|g" \
        "$unit_in" >"$tmp/unit/roomd.service"
    # It exits 0 after mere warnings ("Unknown key ..., ignoring"), so any
    # line about the unit is a failure.
    out=$(MANPATH=$tmp/man systemd-analyze verify "$tmp/unit/roomd.service" 2>&1)
    status=$?
    if printf '%s\n' "$out" | grep -q 'roomd\.service'; then
        fail "systemd-analyze verify etc/roomd.service.in:"
        printf '%s\n' "$out" >&2
    elif [ "$status" -eq 0 ]; then
        ok
        [ -z "$out" ] || printf 'check_docs: systemd-analyze verify: %s\n' "$out" >&2
    else # the tool itself could not run here (no systemd in a container)
        echo "check_docs: systemd-analyze verify could not run; unit not verified:" >&2
        printf '%s\n' "$out" >&2
    fi
else
    echo "check_docs: systemd-analyze or \$ROOMD missing: unit not verified" >&2
fi

# ------------------------------------------------------ the sample config

# Every default written in the sample must be one roomd accepts.
if [ -n "${ROOMD:-}" ] && [ -x "$ROOMD" ]; then
    sed -n 's/^# \([a-z_][a-z_0-9]* =.*\)$/\1/p' "$sample" >"$tmp/uncommented.conf"
    "$ROOMD" -c "$tmp/uncommented.conf" --port=0 --websocket-port=0 --admin-port=0 \
        >"$tmp/roomd.log" 2>&1 &
    roomd_pid=$!
    i=0
    while [ $i -lt 50 ] && ! grep -q 'roomd ready' "$tmp/roomd.log" &&
        kill -0 "$roomd_pid" 2>/dev/null; do
        sleep 0.1 2>/dev/null || sleep 1
        i=$((i + 1))
    done
    if grep -q 'roomd ready' "$tmp/roomd.log"; then ok; else
        fail "roomd did not start on etc/roomd.conf with every key uncommented:"
        cat "$tmp/roomd.log" >&2
    fi
    kill "$roomd_pid" 2>/dev/null
    wait "$roomd_pid" 2>/dev/null
    roomd_pid=
fi

echo "check_docs: $nverbs verbs, $nerrors error texts, $nkeys config keys; $checked checks passed, $problems failed"
[ "$problems" -eq 0 ]
