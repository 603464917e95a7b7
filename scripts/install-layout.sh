# Where scripts/install.sh puts scx_rebal's files and scripts/uninstall.sh
# looks for them: one definition, sourced by both (bash).
# Settings: PREFIX (/usr/local), SYSCONFDIR (/etc), UNITDIR
# ($PREFIX/lib/systemd/system, which systemd searches for /usr/local and /usr),
# DESTDIR (empty: a staging root for packaging), from the environment or as
# VAR=VALUE arguments (layout_var).

PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-}
DESTDIR=${DESTDIR:-}

me=$(basename "$0")

die() {
    echo "$me: $*" >&2
    exit 1
}

# The usage text is the script's header comment, from its second line to the
# first line that is not a comment.
usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2
    exit 2
}

# layout_var VAR=VALUE: sets one of the settings; 1 for any other name.
layout_var() {
    case "$1" in
        PREFIX=* | SYSCONFDIR=* | UNITDIR=* | DESTDIR=*) printf -v "${1%%=*}" '%s' "${1#*=}" ;;
        *) return 1 ;;
    esac
}

# layout: checks the settings and sets every installed path (without DESTDIR).
layout() {
    case "$PREFIX" in /*) ;; *) die "PREFIX must be an absolute path, not '$PREFIX'" ;; esac
    case "$SYSCONFDIR" in /*) ;; *) die "SYSCONFDIR must be an absolute path, not '$SYSCONFDIR'" ;; esac
    PREFIX=${PREFIX%/} SYSCONFDIR=${SYSCONFDIR%/} DESTDIR=${DESTDIR%/}
    [ -n "$PREFIX" ] || PREFIX=/
    unitdir=${UNITDIR:-${PREFIX%/}/lib/systemd/system}
    case "$unitdir" in /*) ;; *) die "UNITDIR must be an absolute path, not '$unitdir'" ;; esac
    local p=${PREFIX%/}
    bindir=$p/bin
    datadir=$p/share
    unit=$unitdir/scx_rebal.service
    defaults=$SYSCONFDIR/default/scx_rebal
    man=$datadir/man/man8/scx_rebal.8
    bash_completion=$datadir/bash-completion/completions/scx_rebal
    zsh_completion=$datadir/zsh/site-functions/_scx_rebal
    fish_completion=$datadir/fish/vendor_completions.d/scx_rebal.fish
    manifest=$datadir/scx_rebal/installed
    # Every file either script may touch, for uninstall.sh without a manifest.
    all_files=("$bindir/scx_rebal" "$unit" "$man" "$bash_completion" "$zsh_completion"
        "$fish_completion" "$manifest")
}
