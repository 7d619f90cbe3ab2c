#!/bin/sh
# Throwaway certificates for tests/c/tls_stream_test.c, made with the openssl
# command into DIR (created if missing). Never use these outside tests.
#
#   ca.pem            the cluster CA (what every node's cafile holds)
#   ca2.pem           a second, unrelated CA
#   nodeN.pem/.key    id N (1, 2, 3), signed by ca, valid now
#   other1.pem/.key   id 1, signed by ca2 (the wrong CA)
#   expired1.pem/.key id 1, signed by ca, validity entirely in the past
#   future1.pem/.key  id 1, signed by ca, validity entirely in the future
#   noid.pem/.key     signed by ca, no urn:canonical-raft:id URI
#   twoid.pem/.key    signed by ca, two id URIs (1 and 2)
#
# Node certificates name their raft id as the SAN URI
# urn:canonical-raft:id:<decimal id> (the rule is in
# canonical_raft/core/tls_stream.h) and carry serverAuth and clientAuth, since
# every node is both a TLS client and a TLS server.
#
# Usage: make_test_certs.sh DIR
set -eu

dir=${1:?usage: make_test_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
# ca.cnf reads these; every openssl call parses the whole file, so give them
# harmless values until a call sets its own.
export CADB=x CANEW=x CASERIAL=x CACERT=x CAKEY=x SAN=DNS:unused

cat >ca.cnf <<'EOF'
[ca]
default_ca = testca

[testca]
dir            = .
database       = $ENV::CADB
new_certs_dir  = $ENV::CANEW
serial         = $ENV::CASERIAL
certificate    = $ENV::CACERT
private_key    = $ENV::CAKEY
default_md     = sha256
policy         = anything
unique_subject = no
copy_extensions = none
email_in_dn    = no

[anything]
commonName = supplied

[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[node_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $ENV::SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[noid_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$1" 2>/dev/null
    chmod 600 "$1"
}

# A self-signed CA: NAME
make_ca() {
    key "$1.key"
    openssl req -config ca.cnf -new -x509 -key "$1.key" -out "$1.pem" \
        -days 3650 -subj "/CN=canonical-raft test $1" -extensions ca_ext \
        -sha256
    mkdir -p "$1.db"
    : >"$1.db/index.txt"
    printf '1000\n' >"$1.db/serial"
}

# A leaf: NAME CA EXTSECTION SAN STARTDATE ENDDATE (dates: YYYYMMDDHHMMSSZ or "")
make_leaf() {
    name=$1 ca=$2 ext=$3 san=$4 start=$5 end=$6
    key "$name.key"
    SAN=$san openssl req -config ca.cnf -new -key "$name.key" \
        -subj "/CN=$name" -out "$name.csr"
    set --
    if [ -n "$start" ]; then set -- "$@" -startdate "$start"; fi
    if [ -n "$end" ]; then set -- "$@" -enddate "$end"; else set -- "$@" -days 825; fi
    CADB=$ca.db/index.txt CANEW=$ca.db CASERIAL=$ca.db/serial \
        CACERT=$ca.pem CAKEY=$ca.key SAN=$san \
        openssl ca -batch -config ca.cnf -notext -extensions "$ext" \
        -in "$name.csr" -out "$name.pem" "$@" 2>/dev/null
    rm -f "$name.csr"
}

make_ca ca
make_ca ca2
for id in 1 2 3; do
    make_leaf "node$id" ca node_ext "URI:urn:canonical-raft:id:$id, DNS:localhost, IP:127.0.0.1" "" ""
done
make_leaf other1 ca2 node_ext "URI:urn:canonical-raft:id:1, IP:127.0.0.1" "" ""
make_leaf expired1 ca node_ext "URI:urn:canonical-raft:id:1" 20200101000000Z 20200201000000Z
make_leaf future1 ca node_ext "URI:urn:canonical-raft:id:1" 20990101000000Z 20990201000000Z
make_leaf noid ca noid_ext "" "" ""
make_leaf twoid ca node_ext "URI:urn:canonical-raft:id:1, URI:urn:canonical-raft:id:2" "" ""

# Fail loudly here rather than with a confusing TLS error later.
for n in node1 node2 node3 noid twoid; do
    openssl verify -CAfile ca.pem "$n.pem" >/dev/null
done
openssl verify -CAfile ca2.pem other1.pem >/dev/null
