// stage analytics
