#!/bin/bash
# Set up x509 certificates for libvirt's TLS transport (qemu+tls://HOST/system)
# between compute nodes, so that poolfs moves volumes with libvirt streams over
# libvirt's own TLS connection and the nodes need no SSH.  contrib/TLS.md has
# the whole recipe (libvirtd.conf, systemd sockets, firewall, SASL/Kerberos).
#
#   libvirt-tls-setup.sh [OPTIONS] ca
#   libvirt-tls-setup.sh [OPTIONS] server HOSTNAME [IP|NAME...]
#   libvirt-tls-setup.sh [OPTIONS] client NAME
#   libvirt-tls-setup.sh [OPTIONS] install server|client DIR
#   libvirt-tls-setup.sh [OPTIONS] check server|client
#   libvirt-tls-setup.sh [OPTIONS] dn CERT
#
# Run with --help for the details.
set -euo pipefail

prog=libvirt-tls-setup

usage() {
    cat <<'EOF'
usage: libvirt-tls-setup.sh [OPTIONS] COMMAND [ARGS]

Commands:
  ca                        Make the certificate authority: CA-DIR/cakey.pem
                            (private: keep it off the compute nodes) and
                            CA-DIR/cacert.pem.  Keeps an existing CA.
  server HOSTNAME [IP|NAME...]
                            Issue libvirtd's server certificate for HOSTNAME:
                            CN=HOSTNAME, subjectAltName DNS:HOSTNAME plus
                            each further NAME (DNS) and IP (IP address), TLS
                            Web Server usage.  Clients must connect with one
                            of these names (qemu+tls://HOSTNAME/system).
  client NAME               Issue a client certificate CN=NAME (TLS Web
                            Client usage), the identity that libvirtd's
                            tls_allowed_dn_list checks.  A compute node that
                            connects to its peers needs one (use its host name).
  install server|client DIR Install a bundle made elsewhere with --dest DIR
                            (cacert.pem, KINDcert.pem, KINDkey.pem) into the
                            system layout (or into --dest), after checking it.
  check server|client       Check the installed files: chain to the CA, usage,
                            key matches certificate, key permissions; print the
                            names (server) or the DN (client).
  dn CERT                   Print CERT's Distinguished Name the way libvirtd's
                            tls_allowed_dn_list compares it.

Options:
  --ca-dir DIR     the CA's directory (default: $LIBVIRT_TLS_CA_DIR, else
                   ./libvirt-ca); server/client/install need its cacert.pem,
                   server/client also its cakey.pem.
  --dest DIR       write into DIR in libvirt's "pkipath" layout: cacert.pem,
                   servercert.pem + serverkey.pem, clientcert.pem +
                   clientkey.pem (what ?pkipath=DIR in a URI and libvirtd's
                   key_file/cert_file/ca_file can point at).  Without --dest,
                   the system layout libvirt uses by default:
                     /etc/pki/CA/cacert.pem
                     /etc/pki/libvirt/servercert.pem  /etc/pki/libvirt/private/serverkey.pem
                     /etc/pki/libvirt/clientcert.pem  /etc/pki/libvirt/private/clientkey.pem
  --org NAME       organization (O=) of the CA and the certificates (default
                   "poolfs"); the CA's CN is the same (virt-pki-validate
                   expects that).
  --days N         validity of server/client certificates (default 1095)
  --ca-days N      validity of the CA (default 3650)
  --key-type T     rsa (default, 3072 bits) or ecdsa (P-256; server and client
                   certificates need --tool openssl: libvirt requires the
                   "key encipherment" usage, which certtool leaves out for
                   ECDSA keys)
  --bits N         RSA key size (default 3072)
  --tool T         certtool (default when installed; Debian: gnutls-bin) or
                   openssl
  --force          reissue (new key and certificate) even if the present ones
                   are valid for the request; with "ca": make a new CA (all
                   certificates it issued become useless)
  -h, --help       this text

Re-running a command is harmless: a certificate that already verifies against
the CA, has the right usage and the requested names, and matches its key is
kept.  Keys are written with mode 0600, certificates 0644.
EOF
}

die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*"; }
bad_usage() { echo "$prog: $*" >&2; echo "Try '$0 --help'." >&2; exit 2; }

ca_dir=${LIBVIRT_TLS_CA_DIR:-./libvirt-ca}
dest=""
org="poolfs"
days=1095
ca_days=3650
key_type=rsa
bits=3072
tool=""
force=0

args=()
while [ $# -gt 0 ]; do
    case $1 in
        --ca-dir) [ $# -ge 2 ] || bad_usage "$1 needs a value"; ca_dir=$2; shift 2 ;;
        --ca-dir=*) ca_dir=${1#*=}; shift ;;
        --dest) [ $# -ge 2 ] || bad_usage "$1 needs a value"; dest=$2; shift 2 ;;
        --dest=*) dest=${1#*=}; shift ;;
        --org) [ $# -ge 2 ] || bad_usage "$1 needs a value"; org=$2; shift 2 ;;
        --org=*) org=${1#*=}; shift ;;
        --days) [ $# -ge 2 ] || bad_usage "$1 needs a value"; days=$2; shift 2 ;;
        --days=*) days=${1#*=}; shift ;;
        --ca-days) [ $# -ge 2 ] || bad_usage "$1 needs a value"; ca_days=$2; shift 2 ;;
        --ca-days=*) ca_days=${1#*=}; shift ;;
        --key-type) [ $# -ge 2 ] || bad_usage "$1 needs a value"; key_type=$2; shift 2 ;;
        --key-type=*) key_type=${1#*=}; shift ;;
        --bits) [ $# -ge 2 ] || bad_usage "$1 needs a value"; bits=$2; shift 2 ;;
        --bits=*) bits=${1#*=}; shift ;;
        --tool) [ $# -ge 2 ] || bad_usage "$1 needs a value"; tool=$2; shift 2 ;;
        --tool=*) tool=${1#*=}; shift ;;
        --force) force=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; args+=("$@"); break ;;
        -*) bad_usage "unknown option $1" ;;
        *) args+=("$1"); shift ;;
    esac
done
set -- "${args[@]+"${args[@]}"}"
[ $# -ge 1 ] || { usage >&2; exit 2; }
cmd=$1; shift

case $key_type in rsa|ecdsa) ;; *) bad_usage "--key-type must be rsa or ecdsa" ;; esac
[[ $days =~ ^[0-9]+$ && $days -gt 0 ]] || bad_usage "--days must be a positive number"
[[ $ca_days =~ ^[0-9]+$ && $ca_days -gt 0 ]] || bad_usage "--ca-days must be a positive number"
[[ $bits =~ ^[0-9]+$ && $bits -ge 2048 ]] || bad_usage "--bits must be at least 2048"
# Names go into certtool templates and openssl -subj strings: keep them to
# characters that need no quoting in either (and in a DN).
[[ $org =~ ^[A-Za-z0-9][A-Za-z0-9\ ._-]*$ ]] ||
    bad_usage "--org: use letters, digits, space, '.', '_' and '-' only"

if [ -z "$tool" ]; then
    if command -v certtool >/dev/null 2>&1; then tool=certtool
    elif command -v openssl >/dev/null 2>&1; then tool=openssl
    else die "neither certtool (apt install gnutls-bin) nor openssl is installed"
    fi
fi
case $tool in
    certtool|openssl) command -v "$tool" >/dev/null 2>&1 ||
        die "$tool is not installed (certtool: apt install gnutls-bin; openssl: apt install openssl)" ;;
    *) bad_usage "--tool must be certtool or openssl" ;;
esac

OID_SERVER=1.3.6.1.5.5.7.3.1
OID_CLIENT=1.3.6.1.5.5.7.3.2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/$prog.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
umask 077

is_ip() {
    [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || [[ $1 =~ ^[0-9A-Fa-f:.]+$ && $1 == *:* ]]
}
valid_dns() {
    [[ $1 =~ ^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$ ]]
}

# ------------------------------------------------------------ the two tools

gen_key() {  # OUT
    case $tool/$key_type in
        certtool/rsa) certtool --generate-privkey --key-type rsa --bits "$bits" --outfile "$1" ;;
        certtool/ecdsa) certtool --generate-privkey --key-type ecdsa --curve secp256r1 --outfile "$1" ;;
        openssl/rsa) openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$bits" -out "$1" ;;
        openssl/ecdsa) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
                           -pkeyopt ec_param_enc:named_curve -out "$1" ;;
    esac >"$tmp/keygen.log" 2>&1 || { cat "$tmp/keygen.log" >&2; die "could not generate a key with $tool"; }
    chmod 0600 "$1"
}

openssl_cfg() {  # KIND(ca|server|client) [SAN...] -> $tmp/openssl.cnf
    {
        echo "[req]"
        echo "distinguished_name = dn"
        echo "prompt = no"
        echo "[dn]"
        echo "[ext]"
        echo "subjectKeyIdentifier = hash"
        case $1 in
            ca)
                echo "basicConstraints = critical, CA:TRUE"
                echo "keyUsage = critical, keyCertSign, cRLSign" ;;
            server|client)
                echo "authorityKeyIdentifier = keyid"
                echo "basicConstraints = critical, CA:FALSE"
                # libvirt wants both bits when key usage is critical.
                echo "keyUsage = critical, digitalSignature, keyEncipherment"
                if [ "$1" = server ]; then
                    echo "extendedKeyUsage = serverAuth"
                else
                    echo "extendedKeyUsage = clientAuth"
                fi ;;
        esac
        shift
        if [ $# -gt 0 ]; then
            local san="" n
            for n in "$@"; do
                if is_ip "$n"; then san+="${san:+, }IP:$n"; else san+="${san:+, }DNS:$n"; fi
            done
            echo "subjectAltName = $san"
        fi
    } > "$tmp/openssl.cnf"
}

make_ca_cert() {  # KEY OUT
    case $tool in
        certtool)
            cat > "$tmp/ca.info" <<EOF
cn = "$org"
organization = "$org"
ca
cert_signing_key
crl_signing_key
expiration_days = $ca_days
EOF
            certtool --generate-self-signed --load-privkey "$1" --template "$tmp/ca.info" \
                     --outfile "$2" >"$tmp/sign.log" 2>&1 ;;
        openssl)
            openssl_cfg ca
            openssl req -new -x509 -config "$tmp/openssl.cnf" -extensions ext -key "$1" \
                    -subj "/O=$org/CN=$org" -days "$ca_days" -sha256 \
                    -set_serial "0x$(openssl rand -hex 15)" -out "$2" >"$tmp/sign.log" 2>&1 ;;
    esac || { cat "$tmp/sign.log" >&2; die "could not make the CA certificate"; }
    chmod 0644 "$2"
}

issue_cert() {  # KIND KEY OUT CN [SAN...]
    local kind=$1 key=$2 out=$3 cn=$4
    shift 4
    case $tool in
        certtool)
            {
                echo "organization = \"$org\""
                echo "cn = \"$cn\""
                local n
                for n in "$@"; do
                    if is_ip "$n"; then echo "ip_address = \"$n\""; else echo "dns_name = \"$n\""; fi
                done
                if [ "$kind" = server ]; then echo tls_www_server; else echo tls_www_client; fi
                echo encryption_key
                echo signing_key
                echo "expiration_days = $days"
            } > "$tmp/cert.info"
            certtool --generate-certificate --load-privkey "$key" \
                     --load-ca-certificate "$ca_dir/cacert.pem" --load-ca-privkey "$ca_dir/cakey.pem" \
                     --template "$tmp/cert.info" --outfile "$out" >"$tmp/sign.log" 2>&1 ;;
        openssl)
            openssl_cfg "$kind" "$@"
            openssl req -new -config "$tmp/openssl.cnf" -key "$key" -subj "/O=$org/CN=$cn" \
                    -out "$tmp/req.csr" >"$tmp/sign.log" 2>&1 &&
            openssl x509 -req -in "$tmp/req.csr" -CA "$ca_dir/cacert.pem" -CAkey "$ca_dir/cakey.pem" \
                    -set_serial "0x$(openssl rand -hex 15)" -days "$days" -sha256 \
                    -extfile "$tmp/openssl.cnf" -extensions ext -out "$out" >>"$tmp/sign.log" 2>&1 ;;
    esac || { cat "$tmp/sign.log" >&2; die "could not sign the $kind certificate for $cn"; }
    chmod 0644 "$out"
}

# verify CA CERT KIND [NAME...]: chain, purpose, and each name (DNS or IP).
verify_cert() {
    local ca=$1 cert=$2 kind=$3 oid purpose n
    shift 3
    if [ "$kind" = server ]; then oid=$OID_SERVER; purpose=sslserver; else oid=$OID_CLIENT; purpose=sslclient; fi
    case $tool in
        certtool)
            certtool --verify --load-ca-certificate "$ca" --infile "$cert" \
                     --verify-purpose "$oid" >/dev/null 2>&1 || return 1
            for n in "$@"; do
                certtool --verify --load-ca-certificate "$ca" --infile "$cert" \
                         --verify-hostname "$n" >/dev/null 2>&1 || return 1
            done ;;
        openssl)
            openssl verify -CAfile "$ca" -purpose "$purpose" "$cert" >/dev/null 2>&1 || return 1
            for n in "$@"; do
                if is_ip "$n"; then
                    openssl verify -CAfile "$ca" -verify_ip "$n" "$cert" >/dev/null 2>&1 || return 1
                else
                    openssl verify -CAfile "$ca" -verify_hostname "$n" "$cert" >/dev/null 2>&1 || return 1
                fi
            done ;;
    esac
}

pubkey_of_cert() {
    case $tool in
        certtool) certtool --pubkey-info --infile "$1" 2>/dev/null |
                      sed -n '/BEGIN PUBLIC KEY/,/END PUBLIC KEY/p' ;;
        openssl) openssl x509 -in "$1" -noout -pubkey 2>/dev/null ;;
    esac
}
pubkey_of_key() {
    case $tool in
        certtool) certtool --pubkey-info --load-privkey "$1" 2>/dev/null |
                      sed -n '/BEGIN PUBLIC KEY/,/END PUBLIC KEY/p' ;;
        openssl) openssl pkey -in "$1" -pubout 2>/dev/null ;;
    esac
}
key_matches() {  # CERT KEY
    local a b
    a=$(pubkey_of_cert "$1") && b=$(pubkey_of_key "$2") && [ -n "$a" ] && [ "$a" = "$b" ]
}

# The DN as libvirtd compares it with tls_allowed_dn_list.  Note: that is
# GnuTLS's gnutls_x509_crt_get_dn() order ("O=poolfs,CN=nodea"), not the
# RFC 4514 order that "certtool -i" and "openssl -nameopt RFC2253" print.
cert_dn() {
    if command -v virt-pki-query-dn >/dev/null 2>&1; then
        virt-pki-query-dn "$1"
    elif command -v openssl >/dev/null 2>&1; then
        openssl x509 -in "$1" -noout -subject \
            -nameopt esc_2253,esc_ctrl,esc_msb,utf8,dump_nostr,dump_unknown,dump_der,sep_comma_plus,sname |
            sed 's/^subject=//'
    else
        # certtool prints RFC 4514 order; reverse it (our names hold no commas).
        certtool -i --infile "$1" | sed -n 's/^[[:space:]]*Subject: //p' | head -n 1 |
            awk -F, '{ s = $NF; for (i = NF - 1; i >= 1; i--) s = s "," $i; print s }'
    fi
}

cert_names() {  # print CN and subjectAltNames of a certificate
    if [ "$tool" = certtool ]; then
        certtool -i --infile "$1" | sed -n -e 's/^[[:space:]]*Subject: /subject: /p' \
            -e 's/^[[:space:]]*DNSname: /DNS: /p' -e 's/^[[:space:]]*IPAddress: /IP: /p' \
            -e 's/^[[:space:]]*Not After: /valid until: /p'
    else
        openssl x509 -in "$1" -noout -subject -enddate -ext subjectAltName 2>/dev/null |
            sed -e 's/^notAfter=/valid until: /'
    fi
}

# ------------------------------------------------------------ layout

# Sets CA_OUT CERT_OUT KEY_OUT for KIND (server|client).
layout() {
    if [ -n "$dest" ]; then
        CA_OUT=$dest/cacert.pem
        CERT_OUT=$dest/${1}cert.pem
        KEY_OUT=$dest/${1}key.pem
    else
        CA_OUT=/etc/pki/CA/cacert.pem
        CERT_OUT=/etc/pki/libvirt/${1}cert.pem
        KEY_OUT=/etc/pki/libvirt/private/${1}key.pem
    fi
}

make_dirs() {
    if [ -n "$dest" ]; then
        mkdir -p "$dest"
        chmod 0755 "$dest"
    else
        install -d -m 0755 /etc/pki /etc/pki/CA /etc/pki/libvirt
        install -d -m 0700 /etc/pki/libvirt/private
    fi
}

# install_file SRC DST MODE: atomic replace (temp file in DST's directory).
install_file() {
    local t
    t=$(mktemp "$(dirname "$2")/.$(basename "$2").XXXXXX")
    cat "$1" > "$t"
    chmod "$3" "$t"
    mv -f "$t" "$2"
}

install_ca_cert() {  # SRC
    if [ -f "$CA_OUT" ] && cmp -s "$1" "$CA_OUT"; then
        return 0
    fi
    if [ -f "$CA_OUT" ]; then
        say "replacing $CA_OUT (it held another CA certificate)"
    fi
    install_file "$1" "$CA_OUT" 0644
    say "installed CA certificate $CA_OUT"
}

need_ca() {  # [with-key]
    [ -f "$ca_dir/cacert.pem" ] ||
        die "no CA certificate in $ca_dir (run '$0 --ca-dir $ca_dir ca' first, or pass --ca-dir)"
    if [ "${1:-}" = with-key ]; then
        [ -f "$ca_dir/cakey.pem" ] ||
            die "no CA key in $ca_dir/cakey.pem: issue certificates where the CA key lives"
    fi
}

# ------------------------------------------------------------ commands

do_ca() {
    [ $# -eq 0 ] || bad_usage "ca takes no arguments"
    if [ -f "$ca_dir/cacert.pem" ] && [ -f "$ca_dir/cakey.pem" ] && [ $force = 0 ]; then
        if key_matches "$ca_dir/cacert.pem" "$ca_dir/cakey.pem"; then
            say "CA already present in $ca_dir (kept; --force makes a new one)"
            say "CA certificate: $ca_dir/cacert.pem"
            return 0
        fi
        die "$ca_dir/cacert.pem does not match $ca_dir/cakey.pem; fix or use --force"
    fi
    mkdir -p "$ca_dir"
    chmod 0700 "$ca_dir"
    gen_key "$tmp/cakey.pem"
    make_ca_cert "$tmp/cakey.pem" "$tmp/cacert.pem"
    install_file "$tmp/cakey.pem" "$ca_dir/cakey.pem" 0600
    install_file "$tmp/cacert.pem" "$ca_dir/cacert.pem" 0644
    say "made CA \"$org\": $ca_dir/cacert.pem (key $ca_dir/cakey.pem: keep it private, off the compute nodes)"
}

# issue KIND CN [SAN...]
issue() {
    local kind=$1 cn=$2
    shift 2
    if [ "$tool/$key_type" = certtool/ecdsa ]; then
        # libvirt (9.0 in Debian 12) refuses a server or client certificate
        # whose critical key usage lacks "key encipherment", and certtool
        # never sets that bit on an ECDSA key.
        die "certtool cannot make an ECDSA $kind certificate that libvirt accepts (no 'key encipherment' usage); use --key-type rsa or --tool openssl"
    fi
    need_ca with-key
    layout "$kind"
    if [ -f "$CERT_OUT" ] && [ -f "$KEY_OUT" ] && [ $force = 0 ]; then
        local why=""
        if ! verify_cert "$ca_dir/cacert.pem" "$CERT_OUT" "$kind" "$@"; then
            why="it is not a valid $kind certificate from this CA${1:+ for $*}"
        elif ! key_matches "$CERT_OUT" "$KEY_OUT"; then
            why="it does not match $KEY_OUT"
        elif [ "$(cert_dn "$CERT_OUT")" != "O=$org,CN=$cn" ]; then
            why="its subject is $(cert_dn "$CERT_OUT"), not O=$org,CN=$cn"
        fi
        if [ -z "$why" ]; then
            make_dirs
            install_ca_cert "$ca_dir/cacert.pem"
            say "$kind certificate $CERT_OUT for $cn is valid and up to date (kept; --force reissues)"
            return 0
        fi
        say "reissuing $CERT_OUT: $why"
    fi
    gen_key "$tmp/key.pem"
    issue_cert "$kind" "$tmp/key.pem" "$tmp/cert.pem" "$cn" "$@"
    verify_cert "$ca_dir/cacert.pem" "$tmp/cert.pem" "$kind" "$@" ||
        die "the new $kind certificate does not verify against $ca_dir/cacert.pem (bug?)"
    make_dirs
    install_ca_cert "$ca_dir/cacert.pem"
    # Key first: a certificate without its key would be worse than none.
    install_file "$tmp/key.pem" "$KEY_OUT" 0600
    install_file "$tmp/cert.pem" "$CERT_OUT" 0644
    say "issued $kind certificate $CERT_OUT (key $KEY_OUT): CN=$cn${1:+, subjectAltName $*}"
}

do_server() {
    [ $# -ge 1 ] || bad_usage "usage: server HOSTNAME [IP|NAME...]"
    local host=$1 n
    if ! valid_dns "$host" || is_ip "$host"; then
        bad_usage "server: '$host' is not a host name (give the name clients will use in qemu+tls://NAME/system)"
    fi
    local names=("$host")
    shift
    for n in "$@"; do
        is_ip "$n" || valid_dns "$n" || bad_usage "server: '$n' is neither an IP address nor a host name"
        [[ " ${names[*]} " == *" $n "* ]] || names+=("$n")
    done
    issue server "$host" "${names[@]}"
    say "libvirtd.conf: cert_file = \"$CERT_OUT\", key_file = \"$KEY_OUT\", ca_file = \"$CA_OUT\""
}

do_client() {
    [ $# -eq 1 ] || bad_usage "usage: client NAME"
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._@-]*$ ]] ||
        bad_usage "client: use letters, digits, '.', '_', '@' and '-' in NAME"
    issue client "$1"
    say "its DN for tls_allowed_dn_list on the servers: $(cert_dn "$CERT_OUT")"
    if [ -n "$dest" ]; then
        say "connect with: virsh -c 'qemu+tls://SERVER/system?pkipath=$(realpath "$dest")'"
    fi
}

do_install() {
    [ $# -eq 2 ] || bad_usage "usage: install server|client DIR"
    local kind=$1 src=$2
    case $kind in server|client) ;; *) bad_usage "install: server or client, not '$kind'" ;; esac
    local f
    for f in cacert.pem "${kind}cert.pem" "${kind}key.pem"; do
        [ -f "$src/$f" ] || die "install: $src/$f is missing"
    done
    [ "$(realpath "$src")" != "$(realpath -m "${dest:-/nonexistent}")" ] ||
        die "install: source and --dest are the same directory"
    # Verify against the bundle's own CA (the CA's directory need not be here).
    verify_cert "$src/cacert.pem" "$src/${kind}cert.pem" "$kind" ||
        die "install: $src/${kind}cert.pem is not a $kind certificate signed by $src/cacert.pem"
    key_matches "$src/${kind}cert.pem" "$src/${kind}key.pem" ||
        die "install: $src/${kind}key.pem does not belong to $src/${kind}cert.pem"
    layout "$kind"
    make_dirs
    install_ca_cert "$src/cacert.pem"
    install_file "$src/${kind}key.pem" "$KEY_OUT" 0600
    install_file "$src/${kind}cert.pem" "$CERT_OUT" 0644
    say "installed $kind certificate $CERT_OUT and key $KEY_OUT"
}

do_check() {
    [ $# -eq 1 ] || bad_usage "usage: check server|client"
    local kind=$1 fail=0 mode
    case $kind in server|client) ;; *) bad_usage "check: server or client, not '$kind'" ;; esac
    layout "$kind"
    for f in "$CA_OUT" "$CERT_OUT" "$KEY_OUT"; do
        [ -f "$f" ] || { echo "MISSING  $f"; fail=1; }
    done
    [ $fail = 0 ] || die "check: files missing"
    if verify_cert "$CA_OUT" "$CERT_OUT" "$kind"; then
        echo "OK       $CERT_OUT is a $kind certificate signed by $CA_OUT"
    else
        echo "FAIL     $CERT_OUT does not verify as a $kind certificate against $CA_OUT"; fail=1
    fi
    if key_matches "$CERT_OUT" "$KEY_OUT"; then
        echo "OK       $KEY_OUT belongs to the certificate"
    else
        echo "FAIL     $KEY_OUT does not belong to $CERT_OUT"; fail=1
    fi
    mode=$(stat -c %a "$KEY_OUT")
    if [ $((8#$mode & 8#077)) -ne 0 ]; then
        echo "WARN     $KEY_OUT has mode $mode; 600 (or 640 for a client key a group must read) is safer"
    fi
    cert_names "$CERT_OUT" | sed 's/^/         /'
    echo "DN       $(cert_dn "$CERT_OUT")"
    [ $fail = 0 ] || die "check: $kind certificate is not usable"
}

do_dn() {
    [ $# -eq 1 ] || bad_usage "usage: dn CERT"
    [ -f "$1" ] || die "dn: no such file $1"
    cert_dn "$1"
}

case $cmd in
    ca) do_ca "$@" ;;
    server) do_server "$@" ;;
    client) do_client "$@" ;;
    install) do_install "$@" ;;
    check) do_check "$@" ;;
    dn) do_dn "$@" ;;
    *) bad_usage "unknown command '$cmd'" ;;
esac
