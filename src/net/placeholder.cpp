// stage net
