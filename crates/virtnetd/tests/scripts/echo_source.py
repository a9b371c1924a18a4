# A TCP server on port argv[1] (IPv6 and v4-mapped) that answers every connection with the
# client's address: the tests read which source a guest's traffic arrived with.
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('::', int(sys.argv[1]))); s.listen(16)
while True:
    c, a = s.accept()
    c.sendall((a[0] + '\n').encode()); c.close()
