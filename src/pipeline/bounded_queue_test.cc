#include "pipeline/bounded_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <numeric>
#include <thread>
#include <vector>

namespace orchard {
namespace {

TEST(BoundedQueue, DeliversInFifoOrder) {
  BoundedQueue<int> q(10, 1000);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(q.Push(i, 1));
  q.Close();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(q.Pop(), i);
  EXPECT_EQ(q.Pop(), std::nullopt);
}

TEST(BoundedQueue, BlocksTheProducerWhenFullInItemsOrBytes) {
  for (auto [items, bytes, cost] : {std::tuple{2, 1000, 1}, std::tuple{100, 10, 5}}) {
    BoundedQueue<int> q(static_cast<size_t>(items), static_cast<size_t>(bytes));
    std::atomic<int> pushed{0};
    std::thread producer([&] {
      for (int i = 0; i < 10; ++i) {
        q.Push(i, static_cast<size_t>(cost));
        ++pushed;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(pushed.load(), 2);  // two fit, the third waits
    for (int i = 0; i < 10; ++i) EXPECT_EQ(q.Pop(), i);
    producer.join();
  }
}

TEST(BoundedQueue, AdmitsAnOversizedItemIntoAnEmptyQueue) {
  BoundedQueue<int> q(4, 10);
  ASSERT_TRUE(q.Push(1, 1000));
  EXPECT_EQ(q.Pop(), 1);
}

TEST(BoundedQueue, CloseWakesBlockedProducersAndConsumers) {
  BoundedQueue<int> q(1, 100);
  ASSERT_TRUE(q.Push(0, 1));
  std::thread producer([&] { EXPECT_FALSE(q.Push(1, 1)); });
  BoundedQueue<int> empty(1, 100);
  std::thread consumer([&] { EXPECT_EQ(empty.Pop(), std::nullopt); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  q.Close();
  empty.Close();
  producer.join();
  consumer.join();
  EXPECT_EQ(q.Pop(), 0);  // what was queued before Close is still delivered
}

TEST(BoundedQueue, ManyProducersAndConsumersLoseNothing) {
  BoundedQueue<int> q(8, 1 << 20);
  constexpr int kPerProducer = 5000;
  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) q.Push(p * kPerProducer + i, 1);
    });
  }
  std::atomic<long long> sum{0};
  std::atomic<int> count{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < 3; ++c) {
    consumers.emplace_back([&] {
      while (auto v = q.Pop()) {
        sum += *v;
        ++count;
      }
    });
  }
  for (auto& t : producers) t.join();
  q.Close();
  for (auto& t : consumers) t.join();
  const long long n = 4LL * kPerProducer;
  EXPECT_EQ(count.load(), n);
  EXPECT_EQ(sum.load(), n * (n - 1) / 2);
}

}  // namespace
}  // namespace orchard
