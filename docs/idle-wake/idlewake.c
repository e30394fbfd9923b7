// Cross-CPU wake-up cost against how long the woken CPU has been idle (docs/idle-wake.md).
// A (cpu0) spins D us after each reply, then writes 1 byte; B (cpu1) blocks in read() and
// replies at once.  A polls its socket with MSG_DONTWAIT (never sleeps), or, with a third
// argument, blocks in read() like a ping-pong.  gcc -O2 -o idlewake idlewake.c; ./idlewake N stream [block]
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>
static inline long long now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
static void pin(int c){cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);sched_setaffinity(0,sizeof s,&s);}
static int cmp(const void*a,const void*b){long long x=*(long long*)a,y=*(long long*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int n=argc>1?atoi(argv[1]):2000; int block=argc>3; int type=argc>2&&!strcmp(argv[2],"dgram")?SOCK_DGRAM:SOCK_STREAM;
  int delays[]={0,2,4,6,8,10,11,12,13,14,15,16,17,18,20,22,25,30,40,60,100,300};
  int nd=sizeof delays/sizeof*delays;
  int sv[2]; if(socketpair(AF_UNIX,type,0,sv))return 1;
  pid_t p=fork();
  if(!p){pin(1);close(sv[0]);char c;for(;;){if(read(sv[1],&c,1)!=1)_exit(0);write(sv[1],&c,1);}}
  pin(0);close(sv[1]);
  long long *rtt=malloc(sizeof(long long)*n),*snd=malloc(sizeof(long long)*n);
  printf("delay_us rtt_p50 rtt_p10 rtt_p90 write_p50 write_p90 ipi_frac rtt_cheap_p50 rtt_ipi_p50\n");
  for(int di=0;di<nd;di++){
    int D=delays[di]*1000; char c='x';
    for(int i=-100;i<n;i++){
      long long t0=now(); while(now()-t0<D);
      long long a=now(); write(sv[0],&c,1); long long b=now();
      if(block){if(read(sv[0],&c,1)!=1)return 2;}else while(recv(sv[0],&c,1,MSG_DONTWAIT)!=1);
      long long e=now();
      if(i>=0){rtt[i]=e-a;snd[i]=b-a;}
    }
    long long *rc=malloc(8*n),*ri=malloc(8*n);int nc=0,ni=0;
    for(int i=0;i<n;i++){if(snd[i]>5000)ri[ni++]=rtt[i];else rc[nc++]=rtt[i];}
    qsort(rc,nc,8,cmp);qsort(ri,ni,8,cmp);
    qsort(rtt,n,sizeof*rtt,cmp);qsort(snd,n,sizeof*snd,cmp);
    printf("%d %lld %lld %lld %lld %lld %.2f %lld %lld\n",delays[di],rtt[n/2],rtt[n/10],rtt[9*n/10],snd[n/2],snd[9*n/10],(double)ni/n,nc?rc[nc/2]:-1,ni?ri[ni/2]:-1);
    fflush(stdout);
  }
  close(sv[0]);wait(0);return 0;
}
