#!/bin/bash
# Two namespaces joined by a veth pair, for profiling a master at 10 ms adverts.
set -e
ip netns add mpm; ip netns add mpb
ip link add mpv0 type veth peer name mpv1
ip link set mpv0 netns mpm; ip link set mpv1 netns mpb
ip -n mpm link set mpv0 name eth0; ip -n mpb link set mpv1 name eth0
ip -n mpm addr add 192.0.2.201/24 dev eth0; ip -n mpb addr add 192.0.2.202/24 dev eth0
for n in mpm mpb; do ip -n $n link set lo up; ip -n $n link set eth0 up; done
conf() { cat <<C
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 55
  priority $1
  advert_int 0.01
  version 3
  unicast_src_ip $2
  unicast_peer {
    $3
  }
  virtual_ipaddress {
    192.0.2.230/24
  }
}
C
}
conf 150 192.0.2.201 192.0.2.202 > /tmp/mprof/m.conf
conf 100 192.0.2.202 192.0.2.201 > /tmp/mprof/b.conf
