import sys,subprocess,collections
data,pids=sys.argv[1],set(sys.argv[2].split(','))
out=subprocess.run(['perf','script','-i',data,'-F','comm,pid,tid,ip,sym'],capture_output=True,text=True).stdout
c=collections.Counter(); tot=0
for block in out.split('\n\n'):
    lines=[l for l in block.strip().split('\n') if l.strip()]
    if not lines: continue
    head=lines[0].split()
    pid=head[1].split('/')[0] if '/' in head[1] else head[0]
    # format: comm pid/tid ...
    fields=lines[0].split()
    pt=[f for f in fields if '/' in f and f.replace('/','').isdigit()]
    if not pt: continue
    pid=pt[0].split('/')[0]
    if pid not in pids: continue
    syms=' '.join(lines[1:])
    tot+=1
    if 'net_rx_action' in syms or 'do_softirq' in syms: k='receiver softirq (bridge/veth, the backup XDP or IP input)'
    elif 'sendmmsg' in syms or 'sendmsg' in syms or 'sendto' in syms: k='send syscall (own part)'
    elif 'schedule' in syms or 'futex' in syms or 'epoll_wait' in syms or 'finish_task_switch' in syms: k='sleep/wake-up (scheduler, futex/epoll)'
    elif 'openat' in syms or 'rename' in syms or 'write' in syms.split() : k='status file'
    elif any(s in syms for s in ('timerfd','sys_read','ksys_read')): k='timerfd read/re-arm'
    elif 'asm_sysvec' in syms or 'irq' in syms: k='interrupts'
    elif '[k]' in syms or 'entry_SYSCALL' in syms or 'syscall' in syms: k='other kernel'
    else: k='user space'
    c[k]+=1
print(f"samples {tot}")
for k,v in c.most_common(): print(f"  {k}: {v} ({100*v/tot:.1f}%)")
