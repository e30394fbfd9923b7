// Same-CPU UDP flood (docs/notes/scheduling.md): writer and reader on one CPU; context switches of each.
// gcc -O2 -o udpflood udpflood.c; ./udpflood N SIZE [READER_CPU (default 1; 0 = same CPU)]
// same-CPU UDP flood: writer and reader on CPU 0; counts context switches of each
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static void pin(int c){cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);sched_setaffinity(0,sizeof s,&s);}
int main(int argc,char**argv){
  int n=atoi(argv[1]), S=atoi(argv[2]); int rc=argc>3?atoi(argv[3]):1;
  long *sh=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  int r=socket(AF_INET,SOCK_DGRAM,0); struct sockaddr_in a={0}; a.sin_family=AF_INET; a.sin_addr.s_addr=htonl(0x7f000001);
  bind(r,(void*)&a,sizeof a); socklen_t l=sizeof a; getsockname(r,(void*)&a,&l);
  struct timeval tv={0,200000}; setsockopt(r,SOL_SOCKET,SO_RCVTIMEO,&tv,sizeof tv);
  pin(rc); pid_t p=fork();
  char *buf=malloc(S);
  if(!p){ long got=0,calls=0; while(1){int k=recv(r,buf,S,0); if(k<0)break; got++;} struct rusage u; getrusage(RUSAGE_SELF,&u);
     sh[0]=got; sh[1]=u.ru_nvcsw; sh[2]=u.ru_nivcsw; _exit(0);}
  pin(0); usleep(100000);
  int w=socket(AF_INET,SOCK_DGRAM,0); memset(buf,1,S);
  double t0=now(); for(int i=0;i<n;i++) sendto(w,buf,S,0,(void*)&a,sizeof a); double t1=now();
  struct rusage u; getrusage(RUSAGE_SELF,&u);
  wait(0);
  printf("S=%d n=%d: sent in %.3f s (%.0f k/s); received %ld (%.1f%%) = %.0f k/s over the send time; reader vol %ld invol %ld; writer vol %ld invol %ld; msgs per reader run %.1f\n",
    S,n,t1-t0,n/(t1-t0)/1e3,sh[0],100.0*sh[0]/n,sh[0]/(t1-t0)/1e3,sh[1],sh[2],u.ru_nvcsw,u.ru_nivcsw,(double)sh[0]/(sh[1]+sh[2]+1));
}
