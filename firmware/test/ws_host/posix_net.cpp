#include "posix_net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

PosixNet::~PosixNet() { stop(); }

bool PosixNet::connect(const char* host, uint16_t port) {
  stop();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host, std::to_string(port).c_str(), &hints, &res) != 0) return false;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      fd_ = fd;
      eof_ = false;
      break;
    }
    close(fd);
  }
  freeaddrinfo(res);
  return fd_ >= 0;
}

bool PosixNet::connected() {
  if (fd_ < 0 || eof_) return false;
  // Like WiFiClient::connected(): false once the peer has closed and no
  // data is left.
  char c;
  ssize_t n = recv(fd_, &c, 1, MSG_PEEK);
  if (n == 0) eof_ = true;
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) eof_ = true;
  return !eof_;
}

size_t PosixNet::read(uint8_t* out, size_t n) {
  if (fd_ < 0) return 0;
  ssize_t k = recv(fd_, out, n, 0);
  if (k > 0) return static_cast<size_t>(k);
  if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) eof_ = true;
  return 0;
}

size_t PosixNet::write(const uint8_t* data, size_t n) {
  size_t done = 0;
  while (fd_ >= 0 && done < n) {
    ssize_t k = send(fd_, data + done, n - done, MSG_NOSIGNAL);
    if (k > 0) {
      done += static_cast<size_t>(k);
    } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      usleep(1000);  // the send buffer is full: a short wait, as a blocking write would
    } else {
      eof_ = true;
      break;
    }
  }
  return done;
}

void PosixNet::stop() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}
