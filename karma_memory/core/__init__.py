"""Pure-Python core of karma_memory: no rclpy import anywhere below this package."""
