/* Does a KVM vCPU run guest code at native speed here? Runs a few bytes of real-mode code (a loop of N
 * iterations, then a write to port 0x3f8 and hlt) straight through /dev/kvm, without QEMU or a BIOS, and
 * prints how long the loop took. Native speed is about 1 ns per iteration; an instruction emulator is
 * 100 to 1000 times slower. Build and run: gcc -O1 -o /tmp/kvm-probe scripts/kvm-probe.c && /tmp/kvm-probe 1000000
 * (see docs/guides/vms.md for what it printed on this project's machine). */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 1000000u;
  unsigned char code[] = {0x66, 0xb9, 0, 0, 0, 0, /* mov ecx, n */
                          0x66, 0x49, 0x75, 0xfc, /* dec ecx; jnz */
                          0xba, 0xf8, 0x03, 0xb0, 'D', 0xee, /* out 0x3f8, 'D' */
                          0xf4};                  /* hlt */
  memcpy(code + 2, &n, 4);
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) { perror("/dev/kvm"); return 1; }
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) { perror("KVM_CREATE_VM"); return 1; }
  unsigned char *mem = mmap(NULL, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  memcpy(mem, code, sizeof code);
  struct kvm_userspace_memory_region r = {.slot = 0, .guest_phys_addr = 0x1000, .memory_size = 0x4000,
                                          .userspace_addr = (unsigned long)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) { perror("KVM_SET_USER_MEMORY_REGION"); return 1; }
  int cpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (cpu < 0) { perror("KVM_CREATE_VCPU"); return 1; }
  struct kvm_run *run = mmap(NULL, ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0);
  struct kvm_sregs s;
  ioctl(cpu, KVM_GET_SREGS, &s);
  s.cs.base = 0;
  s.cs.selector = 0;
  ioctl(cpu, KVM_SET_SREGS, &s);
  struct kvm_regs g = {.rip = 0x1000, .rflags = 2};
  ioctl(cpu, KVM_SET_REGS, &g);
  double t0 = now_ms();
  for (;;) {
    alarm(600);
    if (ioctl(cpu, KVM_RUN, 0) < 0) { perror("KVM_RUN"); return 1; }
    if (run->exit_reason == KVM_EXIT_IO) continue;
    if (run->exit_reason == KVM_EXIT_HLT) break;
    printf("unexpected exit reason %u\n", run->exit_reason);
    return 2;
  }
  double ms = now_ms() - t0;
  printf("%u iterations in %.1f ms: %.1f ns each\n", n, ms, ms * 1e6 / (n ? n : 1));
  return 0;
}
