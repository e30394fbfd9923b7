// Same-CPU one-way stream (docs/notes/scheduling.md): writer and reader pinned to CPU 0; prints the
// context switches and CPU time of each.  gcc -O2 -o sameflood sameflood.c; ./sameflood tcp|unix_stream|unix_dgram N SIZE
// (unix sockets here are a socketpair, so the unix_dgram queue limit does not apply).
// same-CPU one-way stream: writer and reader on CPU 0; context switches of each
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static void pin(int c){cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);sched_setaffinity(0,sizeof s,&s);}
int main(int argc,char**argv){
  const char*tr=argv[1]; int n=atoi(argv[2]), S=atoi(argv[3]);
  long *sh=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  int w,r; struct timeval tv={0,200000};
  if(!strcmp(tr,"tcp")){int l=socket(AF_INET,SOCK_STREAM,0);struct sockaddr_in a={0};a.sin_family=AF_INET;a.sin_addr.s_addr=htonl(0x7f000001);
    bind(l,(void*)&a,sizeof a);socklen_t al=sizeof a;getsockname(l,(void*)&a,&al);listen(l,1);w=socket(AF_INET,SOCK_STREAM,0);
    connect(w,(void*)&a,sizeof a);r=accept(l,0,0);int one=1;setsockopt(w,IPPROTO_TCP,TCP_NODELAY,&one,4);}
  else {int sv[2];socketpair(AF_UNIX,!strcmp(tr,"unix_stream")?SOCK_STREAM:SOCK_DGRAM,0,sv);w=sv[0];r=sv[1];}
  setsockopt(r,SOL_SOCKET,SO_RCVTIMEO,&tv,sizeof tv);
  pin(0); char *buf=malloc(S); memset(buf,1,S);
  pid_t p=fork();
  if(!p){ long got=0,msgs=0; while(1){int k=recv(r,buf,S,0); if(k<=0)break; got+=k; msgs++;} struct rusage u; getrusage(RUSAGE_SELF,&u);
     sh[0]=got; sh[1]=u.ru_nvcsw; sh[2]=u.ru_nivcsw; sh[3]=msgs; sh[4]=u.ru_utime.tv_sec*1000000+u.ru_utime.tv_usec; sh[5]=u.ru_stime.tv_sec*1000000+u.ru_stime.tv_usec; _exit(0);}
  usleep(50000);
  double t0=now(); for(int i=0;i<n;i++) send(w,buf,S,0); double t1=now();
  struct rusage u; getrusage(RUSAGE_SELF,&u); close(w);
  wait(0);
  printf("%-11s S=%-5d: %.0f MB/s (send time); recv calls %ld; reader vol %ld invol %ld; writer vol %ld invol %ld; bytes per reader run %.0f (%.1f msgs)\n",
    tr,S,sh[0]/(t1-t0)/1e6,sh[3],sh[1],sh[2],u.ru_nvcsw,u.ru_nivcsw,(double)sh[0]/(sh[1]+sh[2]+1),(double)sh[0]/S/(sh[1]+sh[2]+1));
  printf("   cpu us per msg: writer %.3f (user %.3f) reader %.3f (user %.3f); wall per msg %.3f\n", (u.ru_utime.tv_sec*1e6+u.ru_utime.tv_usec+u.ru_stime.tv_sec*1e6+u.ru_stime.tv_usec)/n, (u.ru_utime.tv_sec*1e6+u.ru_utime.tv_usec)/n, (sh[4]+sh[5])/(double)n, sh[4]/(double)n, (t1-t0)*1e6/n);
}
