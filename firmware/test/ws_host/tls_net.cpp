#include "tls_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

// BearSSL's record overhead on input (ssl_engine.c; WiFiClientSecure adds it).
constexpr size_t kInOverhead = 325;

int ExIndex() {
  static int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

TlsNet* Self(SSL* ssl) { return static_cast<TlsNet*>(SSL_get_ex_data(ssl, ExIndex())); }

bool LeafMatches(TlsNet* self, X509* cert) {
  if (cert == nullptr) return false;
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
  bool ok = n > 0 && self->KeyMatches(der, static_cast<size_t>(n));
  OPENSSL_free(der);
  return ok;
}

// Known-key semantics: only the leaf's key counts; chain, CA, names and
// dates are not looked at (every other verification error is ignored).
int Verify(int, X509_STORE_CTX* ctx) {
  SSL* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (X509_STORE_CTX_get_error_depth(ctx) != 0) return 1;
  if (LeafMatches(Self(ssl), X509_STORE_CTX_get_current_cert(ctx))) return 1;
  X509_STORE_CTX_set_error(ctx, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

void OnMessage(int write_p, int, int content_type, const void* buf, size_t len, SSL* ssl, void*) {
  if (write_p || content_type != SSL3_RT_HEADER || len < 5) return;
  const uint8_t* h = static_cast<const uint8_t*>(buf);
  Self(ssl)->Record(static_cast<size_t>(h[3]) << 8 | h[4]);
}

SSL_CTX* Context() {
  static SSL_CTX* ctx = [] {
    SSL_CTX* c = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);  // BearSSL has no TLS 1.3
    SSL_CTX_set_cipher_list(c,
                            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:"
                            "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384");
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, Verify);
    SSL_CTX_set_msg_callback(c, OnMessage);
    return c;
  }();
  return ctx;
}

bool IsAddress(const char* host) {
  in6_addr a;
  return inet_pton(AF_INET, host, &a) == 1 || inet_pton(AF_INET6, host, &a) == 1;
}

}  // namespace

TlsNet::TlsNet(std::vector<uint8_t> pin, size_t rx, std::shared_ptr<TlsOutcome> outcome)
    : pin_(std::move(pin)), rx_(rx), outcome_(std::move(outcome)) {}

TlsNet::~TlsNet() { stop(); }

bool TlsNet::KeyMatches(const uint8_t* der, size_t n) const {
  return n == pin_.size() && memcmp(der, pin_.data(), n) == 0;
}

void TlsNet::Record(size_t len) {
  if (len > outcome_->largest_record) outcome_->largest_record = len;
  if (len + 5 > rx_ + kInOverhead) outcome_->record_too_large = true;
}

// A blocking TCP connect and handshake, as WiFiClientSecure::connect on
// the board; then non-blocking reads.
bool TlsNet::connect(const char* host, uint16_t port) {
  stop();
  outcome_->pinned = false;
  outcome_->key_refused = false;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host, std::to_string(port).c_str(), &hints, &res) != 0) return false;
  for (addrinfo* a = res; a != nullptr && fd_ < 0; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      fd_ = fd;
    } else {
      close(fd);
    }
  }
  freeaddrinfo(res);
  if (fd_ < 0) return false;
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{5, 0};  // the handshake may not hang the loop forever
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssl_ = SSL_new(Context());
  SSL_set_ex_data(ssl_, ExIndex(), this);
  SSL_set_fd(ssl_, fd_);
  if (!IsAddress(host)) SSL_set_tlsext_host_name(ssl_, host);  // BearSSL sends the name too
  bool ok = SSL_connect(ssl_) == 1;
  // The verify callback decided on the key; check it once more on the
  // result (a server that sent no certificate never reached it).
  X509* leaf = ok ? SSL_get1_peer_certificate(ssl_) : nullptr;
  bool refused = SSL_get_verify_result(ssl_) == X509_V_ERR_APPLICATION_VERIFICATION;
  if (ok && !LeafMatches(this, leaf)) ok = false, refused = true;
  X509_free(leaf);
  if (!ok) {
    outcome_->key_refused = refused;
    ERR_clear_error();
    stop();
    return false;
  }
  fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
  outcome_->pinned = true;
  eof_ = false;
  return true;
}

bool TlsNet::Fill() {
  if (ssl_ == nullptr || eof_) return false;
  char buf[4096];
  for (;;) {
    int k = SSL_read(ssl_, buf, sizeof buf);
    if (outcome_->record_too_large) {
      eof_ = true;  // BearSSL fails the connection on a record it cannot hold
      return false;
    }
    if (k > 0) {
      pending_.append(buf, static_cast<size_t>(k));
      continue;
    }
    int e = SSL_get_error(ssl_, k);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
    eof_ = true;
    return false;
  }
}

bool TlsNet::connected() {
  Fill();
  return ssl_ != nullptr && (!eof_ || !pending_.empty());
}

size_t TlsNet::read(uint8_t* out, size_t n) {
  if (pending_.empty()) Fill();
  size_t k = pending_.size() < n ? pending_.size() : n;
  memcpy(out, pending_.data(), k);
  pending_.erase(0, k);
  return k;
}

size_t TlsNet::write(const uint8_t* data, size_t n) {
  size_t done = 0;
  while (ssl_ != nullptr && !eof_ && done < n) {
    int k = SSL_write(ssl_, data + done, static_cast<int>(n - done));
    if (k > 0) {
      done += static_cast<size_t>(k);
      continue;
    }
    int e = SSL_get_error(ssl_, k);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
      pollfd p{fd_, static_cast<short>(e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
      poll(&p, 1, 100);  // as a blocking write would wait
      continue;
    }
    eof_ = true;
  }
  return done;
}

void TlsNet::stop() {
  if (ssl_ != nullptr) {
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  pending_.clear();
}
